"""Attribute vocabularies for zero-shot image tagging (mmtui.build.enrich): small curated lists and their prompts.

Article types are read from the catalog's own values when it has them (ARTICLE_TYPES is the fallback).
Colour families say which colours are near enough not to call a product's text and image contradictory
("navy blue" text, "blue" image).
"""

from __future__ import annotations

COLOURS = (
    "black", "white", "grey", "blue", "navy blue", "red", "green", "brown", "purple", "pink", "beige", "maroon",
    "yellow", "olive", "silver", "orange", "gold", "cream", "tan", "charcoal", "off white", "khaki", "magenta",
    "copper", "lavender", "peach", "mustard", "teal", "turquoise blue", "burgundy", "steel", "rust", "bronze",
    "multicoloured",
)

PATTERNS = (
    "solid", "striped", "checked", "floral", "printed", "polka dot", "graphic print", "camouflage", "embroidered",
    "colour block", "paisley", "animal print",
)

MATERIALS = (
    "cotton", "denim", "leather", "wool knit", "silk", "polyester", "linen", "canvas", "suede", "metal", "rubber",
    "fleece", "lace", "nylon",
)

STYLES = ("casual", "formal", "sporty", "ethnic", "party", "smart casual", "vintage", "minimalist", "streetwear")

ARTICLE_TYPES = (
    "t-shirt", "shirt", "dress", "top", "trousers", "jeans", "shorts", "skirt", "jacket", "sweater", "sweatshirt",
    "casual shoes", "sports shoes", "formal shoes", "sandals", "heels", "flip flops", "watch", "handbag",
    "backpack", "wallet", "belt", "sunglasses", "cap", "socks", "scarf", "tie", "kurta", "saree",
)

PROMPTS = {
    "colour": "a photo of a {term} product",
    "pattern": "a photo of a {term} product",
    "material": "a photo of a product made of {term}",
    "style": "a photo of a {term} style product",
    "article_type": "a product photo of {term}",
}

FAMILIES = (
    ("black", "charcoal"),
    ("white", "off white", "cream"),
    ("grey", "charcoal", "steel", "silver", "grey melange"),
    ("blue", "navy blue", "turquoise blue", "teal"),
    ("red", "maroon", "burgundy", "rust"),
    ("pink", "magenta", "peach", "lavender", "nude"),
    ("purple", "lavender", "magenta", "mauve", "burgundy"),
    ("yellow", "mustard", "gold"),
    ("green", "olive", "sea green", "teal", "fluorescent green"),
    ("brown", "tan", "coffee brown", "khaki", "beige", "taupe", "bronze", "copper", "rust", "skin", "nude", "cream"),
    ("orange", "rust", "peach", "copper"),
    ("gold", "bronze", "copper"),
    ("multicoloured", "multi"),
)


def same_family(a: str, b: str) -> bool:
    """True when the two colours are the same or close (share a family)."""
    a, b = a.strip().lower(), b.strip().lower()
    return a == b or any(a in fam and b in fam for fam in FAMILIES)
