"""How well words find pictures on a built index's held-out products, for any set of lite heads.

    .venv/bin/python -m benchmarks.pictures_heldout DATA_DIR [--heads LABEL=FILE ...] [--split test|all] [--json]

Reads the features the build cached (no tower runs; MiniLM encodes the category words) and measures, on the test
split (which neither the shipped heads, adaptation nor any choice at build time saw), with the build summary's own
measures (mmtui.train.adapt_fit.figures): each product's title -> its picture (R@10, MRR) and the category words ->
pictures (nDCG@10, one query per kind with >= 2 products there: the article type, else the category's last step).
Heads measured: "in use" (what the index searches with: adapted, or shipped with the bridge tuned), "shipped" (the
package's heads as they are), and any --heads LABEL=FILE (e.g. another version's shipped or adapted heads: heads
without a bridge temperature project as they always did). `--split all`: every product (for catalogs whose test
split is too small to say anything; then the build's choices did see them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def measure(data_dir: Path, heads: dict[str, Path], split: str = "test") -> dict:
    """{label: figures} for each heads file, plus "in use" and "shipped"; and what was measured on."""
    from mmtui.config import Settings
    from mmtui.encoders import lite_weights
    from mmtui.encoders.for_index import read_adaptation
    from mmtui.encoders.lite import LiteEncoder, load_heads
    from mmtui.store.db import Store
    from mmtui.train.adapt import catalog_pairs, concat_pairs
    from mmtui.train.adapt_fit import category_queries, figures, public

    settings = Settings(data_dir=data_dir, device="cpu")
    store = Store.open(settings.db_path)
    try:
        [fp] = [r[0] for r in store.db.execute("SELECT DISTINCT model FROM embeddings WHERE kind = 'image-features'")]
        pairs = catalog_pairs(store, fp)
        spec = store.get_meta("base_model") or "lite"
        info = read_adaptation(store)
    finally:
        store.close()
    part = pairs[split] if split != "all" else concat_pairs([pairs[s] for s in ("train", "val", "test")])
    queries = category_queries(part)
    query_features = (LiteEncoder.load("lite").encode_texts_with_features([q for q, _ in queries])[1]
                      if queries else None)
    in_use = getattr(info, "in_use", lambda: None)()
    files = {"in use": data_dir / in_use if in_use else lite_weights(spec), "shipped": lite_weights(spec), **heads}
    out = {"data_dir": str(data_dir), "split": split, "products": len(part["rowids"]), "kinds": len(queries),
           "model": getattr(info, "model", "shipped"), "heads": {}}
    for label, path in files.items():
        f = public(figures(load_heads(path)[1], part, queries, query_features))
        out["heads"][label] = {"file": str(path), "r10": f["title->picture"]["r10"], "mrr": f["title->picture"]["mrr"],
                               "category_ndcg@10": f.get("category->picture", {}).get("ndcg@10")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--heads", action="append", default=[], help="LABEL=FILE: more lite heads to measure")
    ap.add_argument("--split", default="test", choices=("test", "val", "all"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    heads = dict(h.split("=", 1) for h in args.heads)
    result = measure(args.data_dir, {k: Path(v) for k, v in heads.items()}, args.split)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['data_dir']}: {result['products']} {result['split']} products, {result['kinds']} kinds "
          f"(model in use: {result['model']})")
    for label, f in result["heads"].items():
        cat = f["category_ndcg@10"]
        print(f"  {label:16s} title R@10 {f['r10']:.3f}  MRR {f['mrr']:.3f}  category nDCG@10 "
              + (f"{cat:.3f}" if cat is not None else "-"))


if __name__ == "__main__":
    main()
