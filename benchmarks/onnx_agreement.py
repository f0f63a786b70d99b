"""The torch-free query model against torch: vectors and results.

    python -m benchmarks.onnx_agreement --index fashion=DATA_DIR[:EVAL.jsonl,...] [--index ...] --out DIR

1. Vectors: `--titles` random Fashion titles (styles.csv, seed 0) encoded one at a time, and `--images` random
   Fashion pictures, by the exported model (ONNX towers + numpy heads) and by torch: cosine min / mean. Images
   against torch's fp32 image tower (the function the export computes) and against torch as this machine
   runs it by default (bf16 on CPUs with native bf16: what the index's image vectors were made with).
2. Results: for each index, its eval files' queries (text: hybrid; image lines: image mode), k=10, searched by
   the service with the exported model and with torch: identical top-10 lists, mean overlap, and the eval
   figures (recall@10, MRR, nDCG@10) of both. The blind eval sets serve as before/after queries here, nothing
   is tuned on them.
Writes onnx-agreement.json and onnx-agreement.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks.bench_util import FASHION, log  # noqa: E402


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def vectors(data_dir: Path, n_titles: int, n_images: int) -> dict:
    import csv

    import torch

    from mmtui.catalog.images import load_image
    from mmtui.config import Settings
    from mmtui.encoders.lite import LiteEncoder
    from mmtui.encoders.lite_config import default_weights
    from mmtui.encoders.query_encoder import exported_query_encoder
    from mmtui.store.db import Store

    torch.set_num_threads(1)
    settings = Settings(data_dir=data_dir)
    store = Store.open(settings.db_path)
    onnx, note = exported_query_encoder(settings, store)
    if onnx is None:
        raise SystemExit(f"{data_dir} has no usable query model: {note}")
    weights = onnx.weights_path
    fp32 = LiteEncoder.load(f"lite:{weights}", device="cpu", image_bf16=False)
    default = LiteEncoder.load(f"lite:{weights}", device="cpu")
    rng = random.Random(0)
    with open(FASHION / "styles.csv", encoding="utf-8") as f:
        titles = [r["productDisplayName"] for r in csv.DictReader(f) if r.get("productDisplayName")]
    titles = rng.sample(titles, min(n_titles, len(titles)))
    pictures = sorted((FASHION / "images").glob("*.jpg"))
    pictures = [load_image(p, onnx.image_size) for p in rng.sample(pictures, min(n_images, len(pictures)))]
    t_onnx = np.concatenate([onnx.encode_texts([t]) for t in titles])
    t_torch = np.concatenate([default.encode_texts([t]) for t in titles])
    i_onnx = np.concatenate([onnx.encode_images([p]) for p in pictures])
    i_fp32 = np.concatenate([fp32.encode_images([p]) for p in pictures])
    i_default = np.concatenate([default.encode_images([p]) for p in pictures])
    out = {"weights": str(weights), "titles": len(titles), "images": len(pictures),
           "image_bf16_default": bool(default.image_bf16)}
    for name, a, b in (("text", t_onnx, t_torch), ("image vs torch fp32", i_onnx, i_fp32),
                       ("image vs torch default", i_onnx, i_default), ("torch default vs torch fp32", i_default, i_fp32)):
        c = cosines(a, b)
        out[name] = {"cos_min": round(float(c.min()), 7), "cos_mean": round(float(c.mean()), 7)}
    store.close()
    return out


def results(data_dir: Path, files: list[Path]) -> dict:
    from mmtui.config import Settings
    from mmtui.encoders.for_index import open_encoder
    from mmtui.evaluation.evaluate import load_queries, run_eval
    from mmtui.query.service import SearchService

    settings = Settings(data_dir=data_dir)
    onnx = SearchService.open(settings)
    onnx.load_model()
    assert type(onnx.encoder).__name__.startswith("Onnx"), onnx.notes
    torch_service = SearchService.open(settings, encoder=open_encoder(settings, onnx.store))
    out = {}
    for path in files:
        queries, skipped = load_queries(path)
        same = overlap = n = 0
        for q in queries:
            if q.kind == "image":
                a = [h.id for h in onnx.search_image(q.image, k=10).hits]
                b = [h.id for h in torch_service.search_image(q.image, k=10).hits]
            else:
                a = [h.id for h in onnx.search(q.text, k=10).hits]
                b = [h.id for h in torch_service.search(q.text, k=10).hits]
            same += a == b
            overlap += len(set(a) & set(b))
            n += 1
        mode = "image" if queries and queries[0].kind == "image" else "hybrid"
        figures = {}
        for name, service in (("onnx", onnx), ("torch", torch_service)):
            report = run_eval(service, queries, mode=mode, k=10, skipped=skipped).to_json()
            figures[name] = {k: report.get(k) for k in ("n_queries", "recall@10", "mrr", "ndcg@10")}
        out[path.name] = {"queries": n, "identical_top10": same, "mean_overlap_at_10": round(overlap / max(n, 1), 3),
                          "mode": mode, "eval": figures}
        log(f"agreement: {data_dir.name} {path.name}: {same}/{n} identical top 10")
    return out


def markdown(report: dict) -> list[str]:
    v = report["vectors"]
    lines = ["# The torch-free query model against torch", "",
             f"Produced by `{report['command']}` on {report['started']} (load average "
             f"{', '.join(f'{x:.1f}' for x in report['load_average'])}).", "",
             f"{v['titles']} Fashion titles and {v['images']} Fashion pictures (random, seed 0), one at a time; "
             f"this machine runs torch's image tower in {'bf16' if v['image_bf16_default'] else 'fp32'} by default.",
             "", "| comparison | cosine min | cosine mean |", "|---|---|---|"]
    for name in ("text", "image vs torch fp32", "image vs torch default", "torch default vs torch fp32"):
        lines.append(f"| {name} | {v[name]['cos_min']} | {v[name]['cos_mean']} |")
    lines += ["", "Search results (k=10; text queries hybrid, image queries image mode), exported model against torch "
              "as this machine runs it by default:", "",
              "| index | queries | n | identical top 10 | mean overlap@10 | recall@10 ONNX / torch | MRR ONNX / torch | "
              "nDCG@10 ONNX / torch |", "|---|---|---|---|---|---|---|---|"]
    for index, files in report["results"].items():
        for name, r in files.items():
            o, t = r["eval"]["onnx"], r["eval"]["torch"]
            lines.append(f"| {index} | {name} | {r['queries']} | {r['identical_top10']} | {r['mean_overlap_at_10']} | "
                         f"{o['recall@10']:.4f} / {t['recall@10']:.4f} | {o['mrr']:.4f} / {t['mrr']:.4f} | "
                         f"{o['ndcg@10']:.4f} / {t['ndcg@10']:.4f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.onnx_agreement", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", action="append", required=True, help="NAME=DATA_DIR[:EVAL.jsonl,EVAL.jsonl]")
    p.add_argument("--titles", type=int, default=500)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    report = {"command": "python -m benchmarks.onnx_agreement " + " ".join(argv or sys.argv[1:]),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_average": list(os.getloadavg()), "results": {}}
    indexes = []
    for spec in args.index:
        name, _, rest = spec.partition("=")
        data_dir, _, evals = rest.partition(":")
        indexes.append((name, Path(data_dir), [Path(e) for e in evals.split(",") if e]))
    report["vectors"] = vectors(indexes[0][1], args.titles, args.images)
    for name, data_dir, files in indexes:
        report["results"][name] = results(data_dir, files)
    report["load_average_end"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "onnx-agreement.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "onnx-agreement.md").write_text("\n".join(markdown(report)) + "\n")
    log(f"wrote {args.out / 'onnx-agreement.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
