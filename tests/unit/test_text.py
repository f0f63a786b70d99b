"""combined_text: order, cleaning, no repeated parts, determinism."""

from __future__ import annotations

from mmtui.catalog.text import combined_text
from mmtui.catalog.records import Product


def test_fashion_product_text_order():
    p = Product("15970", "Turtle Check Men Navy Blue Shirt", category="Apparel > Topwear > Shirts", colour="Navy Blue",
                gender="Men", attributes={"season": "Fall", "usage": "Casual", "year": "2011", "article_type": "Shirts"})
    assert combined_text(p) == "Turtle Check Men Navy Blue Shirt. Apparel > Topwear > Shirts. Navy Blue. Men. Fall. Casual"


def test_cleaning_html_whitespace_and_duplicates():
    p = Product("1", "  Lamp\n\t Shade. ", brand="Acme", colour="white", gender="",
                description="<p>A <b>soft</b>&nbsp;light &amp; warm.</p>",
                attributes={"Features": "<li>LED</li> <li>dimmable</li>", "usage": "White", "Bullets": "Energy saving"})
    assert combined_text(p) == "Lamp Shade. white. Acme. A soft light & warm. Energy saving. LED dimmable"


def test_empty_fields_are_skipped_and_result_is_deterministic():
    p = Product("1", "Hat", attributes={"season": "", "material": "wool"})
    assert combined_text(p) == "Hat"  # arbitrary attributes are filters, not text
    assert combined_text(p) == combined_text(Product("1", "Hat", attributes={"material": "wool", "season": ""}))
