"""Plain records passed between the catalog readers, the store and the build."""

from __future__ import annotations

from dataclasses import dataclass, field

# Reasons a row or an image is rejected. Stable strings: they are stored and reported.
MISSING_ID = "missing_id"
MISSING_TITLE = "missing_title"
DUPLICATE_ID = "duplicate_id"
BAD_ROW = "bad_row"  # a line that cannot be parsed at all (bad JSON, bad CSV quoting)
BAD_VALUE = "bad_value"  # a field that cannot be converted (price "abc"); the row is kept
IMAGE_MISSING = "image_missing"  # no image given, or the file does not exist
IMAGE_UNREADABLE = "image_unreadable"  # permission or I/O error
IMAGE_TOO_SMALL = "image_too_small"  # file under 200 bytes
IMAGE_TOO_LARGE = "image_too_large"  # local file over the size cap (checked with a stat, before reading)
IMAGE_CORRUPT = "image_corrupt"  # not decodable
IMAGE_TRUNCATED = "image_truncated"
IMAGE_BOMB = "image_bomb"  # decompression bomb (too many pixels)
IMAGE_UNSUPPORTED = "image_unsupported"  # a format Pillow cannot or should not open
IMAGE_DOWNLOAD_FAILED = "image_download_failed"  # URL: timeout, HTTP error, too large, not an image

IMAGE_REASONS = (
    IMAGE_MISSING, IMAGE_UNREADABLE, IMAGE_TOO_SMALL, IMAGE_TOO_LARGE, IMAGE_CORRUPT, IMAGE_TRUNCATED,
    IMAGE_BOMB, IMAGE_UNSUPPORTED, IMAGE_DOWNLOAD_FAILED,
)


@dataclass
class Product:
    id: str
    title: str
    description: str = ""
    category: str = ""  # a path, "Apparel > Topwear > Shirts"
    brand: str = ""
    colour: str = ""
    gender: str = ""
    price: float | None = None
    image: str | None = None  # as written in the catalog: a path (relative to the catalog file) or URL
    attributes: dict[str, str] = field(default_factory=dict)  # every other column, e.g. season, usage
    row: int = 0  # 1-based line/row number in the source, for messages
    # Filled by the build, not the reader:
    image_path: str | None = None  # a local file that passed validation
    image_status: str = "ok"  # "ok" or one of IMAGE_REASONS
    image_sha: str | None = None  # content hash of the image file
    image_size: int | None = None  # bytes, with image_mtime_ns: lets a rebuild skip re-validating
    image_mtime_ns: int | None = None
    text: str = ""  # the combined text (see catalog.text.combined_text)


@dataclass
class Reject:
    reason: str  # one of the constants above
    detail: str  # human-readable specifics
    row: int = 0
    product_id: str | None = None
    source: str = ""  # file name the row came from
    kept: bool = False  # True when the product is still in the index (e.g. text-only after an image reject)
