"""What `mmtui train adapter` gains on a catalog the base model has not learned from.

The shipped lite heads were trained on the Fashion catalog's train split, so on Fashion they already fit every
training pair (train R@10 1.00) and an adapter trained on those same pairs has nothing left to learn. This
benchmark gives the adapter a catalog that is new to its base model, inside Fashion: lite heads are trained on
the first SHARE% of the train split only (by the same id hash as the split), then adapters are trained on the
whole train split, as a user would, and everything is measured on the untouched test split (title -> own image,
pool = the test products). Training reads the lite feature cache (features are extracted once, then cached).

    .venv/bin/python benchmarks/adapter_fresh.py                      # share 50, writes results/adapter-fresh.*
    .venv/bin/python benchmarks/adapter_fresh.py --share 25 --name adapter-fresh-25
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_CATALOG = Path("/work/shared/catalogs/fashion/styles.csv")
VARIANTS = {  # seed 000 Stage A: alpha 0.2, 10 epochs; lr 1e-4 (seed 000) and 1e-3 (mmtui's default on lite)
    "adapter --lr 1e-4 (seed 000's rate)": {"epochs": 10, "alpha": 0.2, "lr": 1e-4},
    "adapter (defaults on lite: --lr 1e-3)": {"epochs": 10, "alpha": 0.2, "lr": 1e-3},
    "adapter --lr 1e-3 --alpha 1 --epochs 30": {"epochs": 30, "alpha": 1.0, "lr": 1e-3},
}


def train_bucket(product_id: str) -> int:
    """0..79 for train products: the position of the id's hash inside the train split (mmtui.catalog.splits)."""
    return int.from_bytes(hashlib.sha1(str(product_id).encode()).digest()[:4], "big") % 100


def main(argv: list[str] | None = None) -> dict:
    from mmtui.catalog.readers import read_catalog
    from mmtui.encoders.lite import LiteHeads, default_weights, read_checkpoint
    from mmtui.catalog.splits import split_of
    from mmtui.train import lit
    from mmtui.train.adapter import evaluate_head, fit_head
    from mmtui.train.data import PairedData, PairedSplit
    from mmtui.train.features import extract_image_features, extract_text_features
    from mmtui.encoders.heads import residual_two_tower
    from mmtui.train.losses import info_nce

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    ap.add_argument("--share", type=int, default=50, help="percent of the train split the base heads learn from")
    ap.add_argument("--cache", type=Path, default=REPO / "scratch" / "cache", help="lite feature cache directory")
    ap.add_argument("--name", default="adapter-fresh")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    started = time.time()

    data = read_catalog(args.catalog)
    items = []
    for p in data.products:
        path = Path(p.image_path) if p.image_path else (data.base_dir / p.image if p.image else None)
        if path is not None and path.is_file() and p.title.strip():
            p.image_path = str(path)
            items.append(p)
    limit = args.share * 80 // 100  # train buckets are 0..79

    def base_split(pid: str) -> str:
        s = split_of(pid)
        return s if s != "train" or train_bucket(pid) < limit else "unseen"

    shipped, _, _ = read_checkpoint(default_weights())
    config = {k: v for k, v in shipped.items() if k not in ("metrics", "format", "image_dims", "preprocess")}
    work = REPO / "benchmarks" / ".work" / f"{args.name}-heads"
    base = lit.train_lit(items, work, cache_dir=args.cache, config=config, split_fn=base_split)
    full = lit.train_lit(items, work.with_name(work.name + "-full"), cache_dir=args.cache, config=config,
                         write=False)

    cfg, state, _ = read_checkpoint(work / "lite.safetensors")
    heads = LiteHeads(cfg, cfg["image_dims"])
    heads.load_state_dict({k: v.float() for k, v in state.items()})
    img = extract_image_features([p.image_path for p in items], args.cache, variant=cfg["image_tower"])
    txt = extract_text_features([p.title for p in items], args.cache)
    idx = np.arange(len(items))
    image_vecs = lit._embed(heads.image, lit._select(img, cfg["image"]["pooled"]), idx, "cpu")
    title_vecs = lit._embed(heads.text, lit._select(txt, ["tap", "last", "mask"]), idx, "cpu")
    labels = np.array([split_of(str(p.id)) for p in items])
    pairs = PairedData("base", image_vecs.shape[1], {
        s: PairedSplit(idx[labels == s].astype(np.int64), title_vecs[labels == s], image_vecs[labels == s])
        for s in ("train", "val", "test")})

    rows = [{"model": f"lite heads on {args.share}% of train (the base)", "trained_on": base["n_train"],
             "val_r10": base["val"]["r10"], "test": _short(base["test"])}]
    for label, hp in VARIANTS.items():
        hparams = {"batch_size": 256, "logit_lr": 1e-3, "weight_decay": 1e-2, "seed": 0, **hp}
        t0 = time.time()
        model, fit = fit_head(pairs, build=lambda d, a=hp["alpha"]: residual_two_tower(d, alpha=a),
                              loss=lambda q, p, m: info_nce(q, p, m.logit_scale()), hparams=hparams, device="cpu")
        m = evaluate_head(model, pairs, "cpu")
        rows.append({"model": f"base + {label}", "trained_on": len(pairs.train), "val_r10": m["val_r10"],
                     "test": _short(m["test"]), "best_epoch": fit.best_epoch, "seconds": round(time.time() - t0, 1),
                     "hyperparameters": hparams})
    rows.append({"model": "lite heads retrained on all of train (`mmtui train lit`, the shipped recipe)",
                 "trained_on": full["n_train"], "val_r10": full["val"]["r10"], "test": _short(full["test"])})
    report = {"catalog": str(args.catalog), "share": args.share, "n_test": int(len(pairs.test)),
              "command": "python benchmarks/adapter_fresh.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "seconds": round(time.time() - started, 1), "rows": rows}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    (args.results / f"{args.name}.md").write_text(_markdown(report))
    print(_markdown(report))
    return report


def _short(metrics: dict) -> dict:
    names = {"r1": "recall@1", "r5": "recall@5", "r10": "recall@10", "mrr": "mrr"}
    return {names.get(k, k): round(float(v), 4) for k, v in metrics.items()
            if names.get(k, k) in ("recall@1", "recall@5", "recall@10", "mrr")}


def _markdown(report: dict) -> str:
    lines = [f"# The adapter on a catalog new to its base model ({report['share']}% of Fashion's train split)", "",
             f"`{report['command'].strip()}` ({report['seconds']} s). Test split: {report['n_test']} products, "
             "title -> own image, pool = the test products.", "",
             "| model | trained on | val R@10 | test R@1 | test R@5 | test R@10 | test MRR |", "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        t = r["test"]
        lines.append(f"| {r['model']} | {r['trained_on']:,} | {r['val_r10']:.3f} | {t['recall@1']:.3f} | "
                     f"{t['recall@5']:.3f} | {t['recall@10']:.3f} | {t['mrr']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
