"""Train the shipped lite heads (mmtui/encoders/weights/lite.safetensors) from built indexes' cached features.

    python scripts/train_shipped_heads.py --train fashion-index --train grocery-index --check ikea-index \
        --out mmtui/encoders/weights

Each --train index contributes its train split; the epoch is chosen on the union of their validation splits;
test splits are never read for training and are reported at the end, per index (--check indexes are reported
only: catalogs whose licence keeps them out of shipped weights). Heads start from the current shipped ones and
gain the ImageNet bridge (mmtui.encoders.lite.ImageHead: the tower's classifier + MiniLM names of its classes).
Build each index with the current model first (`mmtui build-index CATALOG --no-adapt`): the features are cached.

    python scripts/train_shipped_heads.py --keep-heads --class-texts mmtui/encoders/weights/imagenet_classes.json \
        --temperature 2 --out mmtui/encoders/weights

--keep-heads trains nothing: the shipped heads are written again with the bridge's class texts (the mean MiniLM
feature of each class's texts in the JSON, see scripts/make_imagenet_class_texts.py) and softmax temperature
replaced. That is how the shipped file got its class texts: retraining the heads with them measured worse on IKEA
and Fashion than swapping them in (benchmarks/results/pictures.md).
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


def class_features(class_texts: Path | None) -> tuple[np.ndarray, str]:
    """(1000, 384) MiniLM features of the ImageNet classes and what they were made from: the mean of each class's
    texts in `class_texts` (imagenet_classes.json), else torchvision's class names (the first shipped bridge)."""
    encoder = LiteEncoder.load("lite")
    if class_texts is None:
        from torchvision.models._meta import _IMAGENET_CATEGORIES

        return encoder.encode_texts_with_features(list(_IMAGENET_CATEGORIES))[1].astype(np.float32), "imagenet-1k"
    classes = json.loads(Path(class_texts).read_text(encoding="utf-8"))["classes"]
    texts = [t for c in classes for t in c["texts"]]
    feats = encoder.encode_texts_with_features(texts)[1].astype(np.float32)
    out, at = np.zeros((len(classes), feats.shape[1]), np.float32), 0
    for i, c in enumerate(classes):
        out[i] = feats[at:at + len(c["texts"])].mean(0)
        at += len(c["texts"])
    return out, f"imagenet-1k: {Path(class_texts).name}"


def bridge_heads(config: dict, state: dict, top: int, weight: float, learn: bool, class_texts: Path | None = None,
                 temperature: float = 1.0) -> tuple[dict, LiteHeads]:
    config = copy.deepcopy(config)
    names, source = class_features(class_texts)
    config["image"]["bridge"] = {"top": top, "weight": weight, "classes": source, "learn_weight": learn}
    if temperature != 1.0:
        config["image"]["bridge"]["temperature"] = temperature
    heads = LiteHeads(config, {k: int(v) for k, v in config["image_dims"].items()})
    heads.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    tower = towers.load_image_tower(config.get("image_tower", "lite0"))
    with torch.no_grad():
        heads.image.fc_w.copy_(tower._fc.weight)
        heads.image.fc_b.copy_(tower._fc.bias)
        heads.image.class_text.copy_(torch.from_numpy(names))
    return config, heads.eval()


def keep_heads(args, config: dict, state: dict) -> None:
    """The shipped heads written again with the bridge's class texts and temperature replaced (nothing trained)."""
    bridge = dict(config["image"].get("bridge") or {})
    if not bridge:
        raise SystemExit("--keep-heads needs shipped heads with an ImageNet bridge")
    new_config, heads = bridge_heads(config, state, int(bridge.get("top", args.top)),
                                     float(bridge.get("weight", args.bridge_weight)),
                                     bool(bridge.get("learn_weight", False)), args.class_texts, args.temperature)
    with torch.no_grad():  # the trained weight, not the config's starting value
        heads.image.bridge_weight.copy_(state["image.bridge_weight"].float())
    out = Path(args.out)
    meta = json.loads(default_weights().with_suffix(".json").read_text())
    save_checkpoint(heads, new_config, {}, out, name="lite")
    written = json.loads((out / "lite.json").read_text())
    written["trained_on"] = meta.get("trained_on")
    written["metrics"] = {**meta.get("metrics", {}), "bridge": f"class texts {new_config['image']['bridge']['classes']}, "
                          f"temperature {args.temperature:g}, swapped in without training the heads again"}
    (out / "lite.json").write_text(json.dumps(written, indent=1))
    print("wrote", out / "lite.safetensors", "with the heads as they were and the bridge's", written["metrics"]["bridge"])


def union(parts: list[dict]) -> dict:
    return {"rowids": np.concatenate([p["rowids"] for p in parts]), "img": np.concatenate([p["img"] for p in parts]),
            "txt": np.concatenate([p["txt"] for p in parts]), "keys": sum((p["keys"] for p in parts), [])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", action="append", default=[], help="an index whose train split is learned from")
    ap.add_argument("--check", action="append", default=[], help="an index only reported (not trained on)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--top", type=int, default=10, help="ImageNet classes mixed into the bridge")
    ap.add_argument("--bridge-weight", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--no-bridge", action="store_true")
    ap.add_argument("--learn-bridge-weight", action="store_true",
                    help="train the bridge's weight too (on Fashion it sinks: Fashion needs no bridge)")
    ap.add_argument("--class-texts", type=Path, default=None,
                    help="imagenet_classes.json: each class's texts (default: torchvision's class names)")
    ap.add_argument("--temperature", type=float, default=1.0, help="softmax temperature over the top classes")
    ap.add_argument("--keep-heads", action="store_true",
                    help="train nothing: write the shipped heads with the new class texts and temperature")
    args = ap.parse_args()
    torch.set_num_threads(1)
    config, state, _ = read_checkpoint(default_weights())
    config = {k: v for k, v in config.items() if k not in ("metrics", "trained_on")}
    if args.keep_heads:
        keep_heads(args, config, state)
        return
    if not args.train:
        ap.error("--train INDEX is needed (or --keep-heads)")
    shipped = LiteHeads(config, {k: int(v) for k, v in config["image_dims"].items()})
    shipped.load_state_dict({k: v.float() for k, v in state.items()})
    shipped.eval()
    if args.no_bridge:
        new_config, start = config, copy.deepcopy(shipped)
    else:
        new_config, start = bridge_heads(config, state, args.top, args.bridge_weight, args.learn_bridge_weight,
                                         args.class_texts, args.temperature)
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
