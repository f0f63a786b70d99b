"""Sparse text (issue 5, seed 004): does the image carry what the seller's text lost?

Makes two copies of the Fashion catalog under scratch/ (never committed): "full" (styles.csv and its images,
no text-only rows) and "sparse" (the same products with the colour field emptied and every colour word taken out
of the titles). Indexes both (vectors are reused from an existing index of the same images when --seed-index is
given: only the changed texts are encoded), learns the fused image weight and the hybrid weights on the
validation split of each, tags images zero-shot (mmtui.build.enrich), and writes seed 004's table for each to
benchmarks/results/modes-{full,sparse}.{md,json}.

Queries (test split, pool = the test split's products): "title" (each title -> its own product; in the sparse
copy the titles are the sparse ones) and "attribute" (e.g. "black casual shoes for men", relevance = the test
split's products of that article type, colour and gender, taken from the FULL catalog's fields for both).

    .venv/bin/python benchmarks/sparse_text.py [--model lite] [--seed-index scratch/fashion-idx] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sqlite3
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mmtui.build import vocab  # noqa: E402

FASHION = Path("/work/shared/catalogs/fashion")
SCRATCH = REPO / "scratch" / "sparse-text"
RESULTS = REPO / "benchmarks" / "results"
EXTRA_COLOUR_WORDS = ("navy", "multicolour", "multicolor", "multicoloured", "multicolored", "multi", "grey melange",
                      "melange", "gray")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def colour_words(rows: list[dict]) -> list[str]:
    """Every colour phrase to remove: the catalog's own baseColour values, the tagging vocabulary, a few extras;
    longest first so "navy blue" goes before "blue"."""
    words = {r["baseColour"].strip().lower() for r in rows if r.get("baseColour", "").strip() not in ("", "NA")}
    words |= set(vocab.COLOURS) | set(EXTRA_COLOUR_WORDS)
    return sorted(words, key=lambda w: (-len(w), w))


def strip_colours(title: str, pattern: re.Pattern) -> str:
    return re.sub(r"\s{2,}", " ", pattern.sub(" ", title)).strip(" -,")


def read_styles(path: Path) -> tuple[list[str], list[list[str]]]:
    """The raw rows of styles.csv (a title with bare commas keeps its extra fields joined back)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) > len(header):
            parts = parts[:len(header) - 1] + [",".join(parts[len(header) - 1:])]
        rows.append(parts)
    return header, rows


def make_catalogs(src: Path, dst: Path, limit: int | None = None) -> tuple[Path, Path, dict]:
    """dst/full and dst/sparse (styles.csv + a symlink to the images); returns their paths and counts."""
    header, rows = read_styles(src / "styles.csv")
    if limit:
        rows = rows[:limit]
    as_dicts = [dict(zip(header, r)) for r in rows]
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in colour_words(as_dicts)) + r")\b", re.IGNORECASE)
    colour_i, title_i = header.index("baseColour"), header.index("productDisplayName")
    changed = 0
    out = {}
    for name in ("full", "sparse"):
        folder = dst / name
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "images"
        if not link.exists():
            link.symlink_to(src / "images")
        with (folder / "styles.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            f.write(",".join(header) + "\n")
            for r in rows:
                r = list(r)
                if name == "sparse":
                    r[colour_i] = ""
                    new = strip_colours(r[title_i], pattern)
                    changed += new != r[title_i]
                    r[title_i] = new or r[title_i]
                writer.writerow(r)
        out[name] = folder
    return out["full"], out["sparse"], {"products": len(rows), "titles_changed": changed}


def copy_index(seed: Path, dst: Path) -> None:
    """Copy a built index's database (online backup: safe while another process reads it)."""
    dst.mkdir(parents=True, exist_ok=True)
    target = dst / "catalog.db"
    if target.exists():
        return
    source = sqlite3.connect(str(seed / "catalog.db"))
    copy = sqlite3.connect(str(target))
    with copy:
        source.backup(copy)
    source.close()
    copy.close()


def prepare(catalog: Path, data_dir: Path, model: str, seed: Path | None, encoder=None):
    from mmtui.build.pipeline import build_index
    from mmtui.config import Settings

    settings = Settings(data_dir=data_dir, model=model)
    if seed is not None and (seed / "catalog.db").exists():
        copy_index(seed, data_dir)
    log(f"build-index {catalog} -> {data_dir}")
    report = build_index(settings, catalog, encoder=encoder, progress=_progress)
    log(f"  {report.products} products, encoded {report.encoded_images} images / {report.encoded_texts} texts "
        f"in {report.seconds:.0f}s")
    return settings


def _progress(event) -> None:
    if event.total and event.done in (0, event.total):
        log(f"  {event.stage}: {event.done}/{event.total} {event.message or ''}")


def run_one(name: str, settings, attribute_store, title: str, encoder=None) -> dict:
    from mmtui.build.enrich import enrich
    from mmtui.train.weights.hybrid import train_hybrid
    from mmtui.cli.reports import write_modes_report as write_report
    from mmtui.evaluation.modes import compare_modes, default_query_sets
    from mmtui.query.service import SearchService

    service = SearchService.open(settings, encoder=encoder)
    with service.store.db.conn:  # a rerun starts from the seller's text alone
        service.store.db.execute("DELETE FROM product_tags")
        service.store.db.execute("UPDATE products SET tags = NULL WHERE tags IS NOT NULL")
    sets = default_query_sets(service.store, "test", attribute_store=attribute_store)
    log(f"[{name}] modes before enrichment (lexical sees the seller's text only)")
    before = compare_modes(service, sets, split="test")
    service.close()
    log(f"[{name}] enrich (zero-shot tags from cached image vectors)")
    enriched = enrich(settings, encoder=encoder)
    log(f"[{name}] learn fusion + hybrid weights on val")
    fusion, fit = train_hybrid(settings, encoder=encoder, split="val", attribute_store=attribute_store)
    log(f"[{name}]   image weight {fusion.image_weight:.2f}, hybrid weights {fit.weights}")
    service = SearchService.open(settings, encoder=encoder)
    after = compare_modes(service, sets, split="test")
    service.close()
    lexical = dict(next(r for r in before.rows if r["label"] == "lexical (BM25)"))
    lexical["label"] = "lexical (BM25), seller text only"
    for row in after.rows:
        if row["label"] == "lexical (BM25)":
            row["label"] = "lexical (BM25) + image tags"
    after.rows.insert(0, lexical)
    md, js = write_report(after, RESULTS, f"modes-{name}", title)
    extra = {"enrich": enriched.to_json(), "fusion": fusion.to_json(), "hybrid": fit.to_json()}
    (RESULTS / f"modes-{name}-training.json").write_text(json.dumps(extra, indent=2) + "\n", encoding="utf-8")
    log(f"[{name}] wrote {md} and {js}")
    print(md.read_text())
    return {"table": after.to_json(), **extra}


def load_model(model: str, weights: Path | None):
    if weights is not None:
        from mmtui.encoders.lite import LiteEncoder

        return LiteEncoder.load("lite", device="cpu", weights=weights)
    from mmtui.encoders import load_encoder

    return load_encoder(model, device="cpu")


def main() -> None:
    global RESULTS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lite")
    parser.add_argument("--seed-index", type=Path, default=REPO / "scratch" / "fashion-idx",
                        help="a built index of the Fashion images to reuse vectors from (copied, not changed)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N products (a quick dry run)")
    parser.add_argument("--only", choices=("full", "sparse"), default=None)
    parser.add_argument("--work", type=Path, default=SCRATCH, help="where the catalog copies and indexes go")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--weights", type=Path, default=None,
                        help="lite weights to use (a snapshot, so a model retrained meanwhile does not interfere)")
    args = parser.parse_args()
    RESULTS = args.results
    from mmtui.store.db import Store

    work = args.work
    full_cat, sparse_cat, counts = make_catalogs(FASHION, work / "catalogs", args.limit)
    log(f"catalogs: {counts}")
    seed = args.seed_index if args.seed_index and (args.seed_index / "catalog.db").exists() else None
    encoder = load_model(args.model, args.weights)  # loaded once, used by every step
    full = prepare(full_cat, work / "full-idx", args.model, seed, encoder)
    sparse = prepare(sparse_cat, work / "sparse-idx", args.model, work / "full-idx", encoder)
    full_store = Store.open(full.db_path)
    results = {}
    if args.only in (None, "full"):
        results["full"] = run_one("full", full, full_store, "Full text (Fashion, test split)", encoder)
    if args.only in (None, "sparse"):
        results["sparse"] = run_one("sparse", sparse, full_store,
                                    "Sparse text: colour field and colour words removed (Fashion, test split)", encoder)
    summary = {"catalogs": counts, "model": args.model, "fingerprint": encoder.fingerprint}
    (RESULTS / "sparse-text-summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
