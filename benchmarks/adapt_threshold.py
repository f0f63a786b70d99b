"""How many products adapting needs: samples of a built index's catalog, adapted as build-index would adapt them.

    .venv/bin/python -m benchmarks.adapt_threshold DATA_DIR [--sizes 30,60,120,200,400] [--repeats 3]

For each size N, N products are drawn (80% from the train split, 10% from validation), the heads are adapted on
them exactly as build-index does (mmtui.train.adapt: warm start from the shipped heads, the keep test on the
sample's own validation products), and the result is scored on the catalog's whole test split, which no sample
contains: held-out title -> picture R@10 and MRR, and whether the keep test kept the adapted heads. DATA_DIR must be
built by build-index (its cached features are all this reads).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("--sizes", default="30,60,120,200,400")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch

    from mmtui.config import Settings
    from mmtui.encoders.lite import default_weights, load_heads
    from mmtui.progress import null_progress
    from mmtui.store.db import Store
    from mmtui.train import adapt

    torch.set_num_threads(1)
    store = Store.open(Settings.load(data_dir=args.data_dir).db_path)
    pairs = adapt._pairs(store, json.loads(store.get_meta("lite_fingerprint_memo"))["features"])
    _, shipped = load_heads(default_weights())
    held = pairs["test"]
    base = adapt._figures(shipped, held, [], None)["title->picture"]
    print(f"shipped heads on the {base['n']} test products: R@10 {base['r10']:.3f}, MRR {base['mrr']:.3f}")
    rng = np.random.default_rng(0)

    def sample(part: dict, idx: np.ndarray) -> dict:
        return {"rowids": part["rowids"][idx], "img": part["img"][idx], "txt": part["txt"][idx],
                "keys": [part["keys"][i] for i in idx]}

    print("| products | held-out R@10 | held-out MRR | kept |\n|---|---|---|---|")
    for n in (int(x) for x in args.sizes.split(",")):
        rows = []
        for _ in range(args.repeats):
            tr = rng.choice(len(pairs["train"]["rowids"]), int(0.8 * n), replace=False)
            va = rng.choice(len(pairs["val"]["rowids"]), max(2, int(0.1 * n)), replace=False)
            part = {"train": sample(pairs["train"], tr), "val": sample(pairs["val"], va)}
            heads, _ = adapt._fit(shipped, part, device="cpu", progress=null_progress, cancel=None)
            kept = adapt.keep_adapted(adapt._figures(shipped, part["val"], [], None),
                                      adapt._figures(heads, part["val"], [], None), min(1.0, 10 / len(va)))
            f = adapt._figures(heads, held, [], None)["title->picture"]
            rows.append((f["r10"], f["mrr"], kept))
        print(f"| {n} | {' / '.join(f'{r[0]:.3f}' for r in rows)} | {' / '.join(f'{r[1]:.3f}' for r in rows)} | "
              f"{' / '.join('yes' if r[2] else 'no' for r in rows)} |")


if __name__ == "__main__":
    main()
