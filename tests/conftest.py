"""Shared tiny fixtures. Keep each one small and documented; tests build their own data in tmp_path."""

from __future__ import annotations

import io
from pathlib import Path

import pytest


def jpeg_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (32, 32)) -> bytes:
    """A small valid JPEG (over the 200-byte minimum)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def fashion_dir(tmp_path: Path) -> Path:
    """A Fashion-layout folder: styles.csv with 3 products (images for 2), and styles-text-only.csv with 1."""
    folder = tmp_path / "fashion"
    (folder / "images").mkdir(parents=True)
    header = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n"
    (folder / "styles.csv").write_text(
        header
        + "15970,Men,Apparel,Topwear,Shirts,Navy Blue,Fall,2011,Casual,Turtle Check Men Navy Blue Shirt\n"
        + "12967,Men,Footwear,Sandal,Sandals,Black,Fall,2011,Casual,ADIDAS Men Spry M Black Sandals\n"
        + "59263,Women,Accessories,Watches,Watches,Silver,Winter,2016,Casual,Titan Women Silver Watch\n"
    )
    (folder / "styles-text-only.csv").write_text(
        header + "39386,Men,Apparel,Bottomwear,Jeans,Blue,Summer,2012,Casual,Peter England Men Party Blue Jeans\n"
    )
    (folder / "images" / "15970.jpg").write_bytes(jpeg_bytes((20, 30, 90)))
    (folder / "images" / "12967.jpg").write_bytes(jpeg_bytes((10, 10, 10)))
    return folder


@pytest.fixture
def make_jpeg():
    """The jpeg_bytes(colour, size) helper, as a fixture."""
    return jpeg_bytes


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def generic_catalog() -> Path:
    """tests/fixtures/generic_catalog: products.csv with 5 rows (3 real images, 1 without, 1 missing file; 1 price)."""
    return FIXTURES / "generic_catalog"
