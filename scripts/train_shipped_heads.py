"""Train the shipped lite heads (mmtui/encoders/weights/lite.safetensors) from built indexes' cached features.

    python scripts/train_shipped_heads.py --train fashion-index --train grocery-index --check ikea-index \
        --out mmtui/encoders/weights

Each --train index contributes its train split; the epoch is chosen on the union of their validation splits;
test splits are never read for training and are reported at the end, per index (--check indexes are reported
only: catalogs whose licence keeps them out of shipped weights). Heads start from the current shipped ones and
gain the ImageNet bridge (mmtui.encoders.lite.ImageHead: the tower's classifier + MiniLM names of its classes).
Build each index with the current model first (`mmtui build-index CATALOG --no-adapt`): the features are cached.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch

from mmtui.config import Settings
from mmtui.encoders import towers
from mmtui.encoders.lite import LiteEncoder, LiteHeads, default_weights, read_checkpoint
from mmtui.progress import ProgressEvent
from mmtui.store.db import Store
from mmtui.train import adapt
from mmtui.train.lit import save_checkpoint


def features_of(index: str) -> dict:
    store = Store.open(Settings.load(data_dir=index).db_path)
    memo = json.loads(store.get_meta("lite_fingerprint_memo") or "{}")
    pairs = adapt._pairs(store, memo["features"])
    store.close()
    return pairs


def bridge_heads(config: dict, state: dict, top: int, weight: float, learn: bool) -> tuple[dict, LiteHeads]:
    config = copy.deepcopy(config)
    config["image"]["bridge"] = {"top": top, "weight": weight, "classes": "imagenet-1k", "learn_weight": learn}
    heads = LiteHeads(config, {k: int(v) for k, v in config["image_dims"].items()})
    heads.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    tower = towers.load_image_tower(config.get("image_tower", "lite0"))
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    encoder = LiteEncoder.load("lite")
    names = encoder.encode_texts_with_features(list(_IMAGENET_CATEGORIES))[1].astype(np.float32)
    with torch.no_grad():
        heads.image.fc_w.copy_(tower._fc.weight)
        heads.image.fc_b.copy_(tower._fc.bias)
        heads.image.class_text.copy_(torch.from_numpy(names))
    return config, heads.eval()


def union(parts: list[dict]) -> dict:
    return {"rowids": np.concatenate([p["rowids"] for p in parts]), "img": np.concatenate([p["img"] for p in parts]),
            "txt": np.concatenate([p["txt"] for p in parts]), "keys": sum((p["keys"] for p in parts), [])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", action="append", required=True, help="an index whose train split is learned from")
    ap.add_argument("--check", action="append", default=[], help="an index only reported (not trained on)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--top", type=int, default=10, help="ImageNet classes mixed into the bridge")
    ap.add_argument("--bridge-weight", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--no-bridge", action="store_true")
    ap.add_argument("--learn-bridge-weight", action="store_true",
                    help="train the bridge's weight too (on Fashion it sinks: Fashion needs no bridge)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    config, state, _ = read_checkpoint(default_weights())
    config = {k: v for k, v in config.items() if k != "metrics"}
    shipped = LiteHeads(config, {k: int(v) for k, v in config["image_dims"].items()})
    shipped.load_state_dict({k: v.float() for k, v in state.items()})
    shipped.eval()
    if args.no_bridge:
        new_config, start = config, copy.deepcopy(shipped)
    else:
        new_config, start = bridge_heads(config, state, args.top, args.bridge_weight, args.learn_bridge_weight)
    data = {name: features_of(name) for name in args.train + args.check}
    pairs = {"train": union([data[n]["train"] for n in args.train]), "val": union([data[n]["val"] for n in args.train])}
    progress = lambda e: print(e.message) if isinstance(e, ProgressEvent) and e.message else None  # noqa: E731
    heads, epochs = adapt._fit(start, pairs, device="cpu", epochs=args.epochs, lr=args.lr, progress=progress,
                               cancel=None)
    report = {}
    for name, parts in data.items():
        for split in ("val", "test"):
            if not len(parts[split]["rowids"]):
                continue
            row = {}
            for label, h in (("shipped", shipped), ("start", start), ("new", heads)):
                row[label] = adapt._figures(h, parts[split], [], None)["title->picture"]
            report[f"{name}:{split}"] = row
            print(name, split, {k: (v["r1"], v["r10"], v["mrr"]) for k, v in row.items()})
    metrics = {"trained_on": args.train, "epochs": epochs, "report": report}
    out = Path(args.out)
    save_checkpoint(heads, new_config, metrics, out, name="lite")
    meta = json.loads((out / "lite.json").read_text())
    meta["trained_on"] = [f"{Path(n).name}: train split" for n in args.train]
    meta["metrics"] = {"selected_on": "val R@10 + MRR of the trained-on indexes", "epochs": epochs,
                       "title->picture (r1, r10, mrr)": {k: {h: [v[h]["r1"], v[h]["r10"], v[h]["mrr"]] for h in v}
                                                         for k, v in report.items()}}
    (out / "lite.json").write_text(json.dumps(meta, indent=1))
    (out / "lite.safetensors").chmod(0o644)
    print("wrote", out / "lite.safetensors", "bridge weight",
          float(heads.image.bridge_weight.detach()) if heads.image.bridge else None)


if __name__ == "__main__":
    main()
