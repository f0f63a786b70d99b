"""Catalog reading, image validation/download and combined text.

    data = read_catalog("sample_catalog")          # products + rejects, any accepted layout
    rejects = resolve_images(data.products, data.base_dir, settings.image_cache_dir)
    text = combined_text(product)
"""

from .images import load_image, resolve_images, validate_image
from .readers import CatalogData, parse_columns, read_catalog
from .records import Product, Reject
from .text import combined_text

__all__ = [
    "CatalogData", "Product", "Reject", "combined_text", "load_image", "parse_columns",
    "read_catalog", "resolve_images", "validate_image",
]
