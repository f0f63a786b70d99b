"""Reproduce the shipped `lite` model's retrieval figures end to end (real towers, real images).

Text -> image exact-item retrieval: query = product title, relevant = that product's own image,
pool = every product of the split that has an image. Also measures images/s and texts/s.

    .venv/bin/python benchmarks/lite_quality.py                      # fashion catalog, test split
    .venv/bin/python benchmarks/lite_quality.py --split val --fp32   # bf16 image tower off
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmtui.catalog.readers import read_catalog  # noqa: E402
from mmtui.encoders.lite import LiteEncoder  # noqa: E402
from mmtui.catalog.splits import split_of  # noqa: E402
from mmtui.train.lit import retrieval_metrics  # noqa: E402

DEFAULT_CATALOG = Path("/work/shared/catalogs/fashion/styles.csv")


def load_split(catalog: Path, split: str) -> list[tuple[str, str, Path]]:
    """(id, title, image path) of the split's products whose image file exists."""
    data = read_catalog(catalog)
    rows = []
    for p in data.products:
        if split != "all" and split_of(p.id) != split:
            continue
        path = Path(p.image_path) if p.image_path else (data.base_dir / p.image if p.image else None)
        if path is not None and path.is_file() and p.title.strip():
            rows.append((p.id, p.title, path))
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    ap.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    ap.add_argument("--weights", type=Path, default=None, help="a lite.safetensors (default: the shipped one)")
    ap.add_argument("--fp32", action="store_true", help="run the image tower in float32 on the CPU")
    ap.add_argument("--bf16", action="store_true", help="run the image tower in bfloat16 on the CPU")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: mmtui's choice)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N products of the split")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "lite_quality.json")
    args = ap.parse_args(argv)

    from PIL import Image

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    rows = load_split(args.catalog, args.split)
    if args.limit:
        rows = rows[: args.limit]
    enc = LiteEncoder.load("lite", weights=args.weights, image_bf16=False if args.fp32 else (True if args.bf16 else None))
    titles = [t for _, t, _ in rows]
    t0 = time.perf_counter()
    tv = enc.encode_texts(titles)
    text_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    iv = []
    for s in range(0, len(rows), 64):
        iv.append(enc.encode_images([Image.open(p).convert("RGB") for _, _, p in rows[s:s + 64]]))
    image_s = time.perf_counter() - t0
    m = retrieval_metrics(tv, np.concatenate(iv))
    result = {"split": args.split, "pool": len(rows), "catalog": str(args.catalog), "fingerprint": enc.fingerprint,
              "image_bf16": enc.image_bf16, "threads": __import__("torch").get_num_threads(), **{k: round(v, 4) for k, v in m.items() if k != "n"},
              "images_per_s": round(len(rows) / image_s, 1), "texts_per_s": round(len(rows) / text_s, 1)}
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"lite: text->image, {args.split} split, pool {len(rows)}")
        for col in ("R@1", "R@5", "R@10", "MRR", "images/s", "texts/s"):
            table.add_column(col, justify="right")
        table.add_row(*(f"{result[k]:.3f}" for k in ("r1", "r5", "r10", "mrr")),
                      f"{result['images_per_s']:.1f}", f"{result['texts_per_s']:.1f}")
        Console().print(table)
    except ImportError:
        print(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
