"""Deterministic train/validation/test split by product id (80/10/10).

The split depends only on the id, so it is stable across rebuilds, machines and catalog order,
and a product added later never moves another product between splits.
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "val", "test")


def split_of(product_id: str) -> str:
    bucket = int.from_bytes(hashlib.sha1(str(product_id).encode()).digest()[:4], "big") % 100
    if bucket < 80:
        return "train"
    if bucket < 90:
        return "val"
    return "test"
