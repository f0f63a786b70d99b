"""Catalog reading, image validation/download and combined text."""

from .readers import CatalogData, parse_columns, read_catalog
from .records import Product, Reject
from .text import combined_text

__all__ = ["CatalogData", "Product", "Reject", "combined_text", "parse_columns", "read_catalog"]
