"""A million distinct products from real catalogs' vocabularies and vectors, for the large-catalog ANN figures.

Not noisy copies (bench_query's store repeats each real vector ~140 times at 1M, so a graph's "neighbours" are
copies of one product): every product here is a real product (Fashion 33k, IKEA 2.2k, grocery 81: their lite
text and image vectors from built data dirs) changed the way catalogs vary a product: another colour, a
descriptor word and a line/brand word from the catalogs' own vocabularies. The change moves its vectors along
attribute directions measured on the real vectors (mean vector of the products whose title holds the word,
minus the catalog mean), plus a small product-specific noise; its title changes alike. `stats` compares the
nearest-neighbour structure (top-1 cosine, the 10th-11th gap, near-duplicate share) with the real catalog's.

    python -m benchmarks.gen_products 1000000 [--sources DIR ...]   -> WORK/products-1000000/
        text.npy, image.npy (float32, L2-normalised, written a chunk at a time), titles.txt, meta.json

The market catalog is used for vocabulary only (brand/line words), never for vectors.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path

import numpy as np

from .bench_util import WORK, log

SOURCES = [Path("/work/scratch/pictures/idx-fashion-noadapt"), Path("/work/scratch/pictures/idx-ikea-noadapt"),
           Path("/work/scratch/pictures/idx-grocery-noadapt")]
MARKET = Path("/work/catalogs/market/products.csv")
FINGERPRINT = "95bfd58f1f0f8a8a"  # lite, this machine's (bf16 image tower): the sources' vectors
CHUNK = 50_000
NOISE = {"text": 0.012, "image": 0.035}  # per-dimension sd of a product's own noise (gen_products --stats: top-1
# cosine and 10th-11th gap near the real catalog's)
WORD_WEIGHT = 0.35  # how far a descriptor / line word moves the vector, relative to its measured direction
_WORD = re.compile(r"[A-Za-z][A-Za-z\-]{2,}")


def _read_source(path: Path) -> dict:
    """Titles, colours, types and lite vectors of a built data dir, read-only."""
    conn = sqlite3.connect(f"file:{path / 'catalog.db'}?mode=ro", uri=True)
    rows = conn.execute("SELECT rowid, title, coalesce(colour, ''), coalesce(nullif(article_type, ''), category, ''),"
                        " coalesce(gender, '') FROM products ORDER BY rowid").fetchall()
    vec = {}
    for kind in ("text", "image"):
        got = conn.execute("SELECT product_rowid, vector FROM embeddings WHERE model = ? AND kind = ? "
                           "ORDER BY product_rowid", (FINGERPRINT, kind)).fetchall()
        vec[kind] = ({r: i for i, (r, _) in enumerate(got)},
                     np.frombuffer(b"".join(v for _, v in got), dtype=np.float32).reshape(len(got), -1))
    conn.close()
    text_at, text = vec["text"]
    keep = [r for r in rows if r[0] in text_at]
    return {"name": path.name, "title": [r[1] or "" for r in keep], "colour": [r[2] for r in keep],
            "type": [r[3] for r in keep], "gender": [r[4] for r in keep],
            "text": text[[text_at[r[0]] for r in keep]], "image_at": vec["image"][0], "image": vec["image"][1],
            "rowid": [r[0] for r in keep]}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _directions(groups: dict[str, np.ndarray], vectors: np.ndarray, min_count: int) -> dict[str, np.ndarray]:
    """word -> mean vector of the products holding it minus the mean of all."""
    mean = vectors.mean(axis=0)
    return {w: vectors[idx].mean(axis=0) - mean for w, idx in groups.items() if len(idx) >= min_count}


class Model:
    """The real catalogs, their vocabularies and attribute directions (text and image space)."""

    def __init__(self, sources: list[Path]) -> None:
        self.cats = [_read_source(p) for p in sources if (p / "catalog.db").is_file()]
        for c in self.cats:
            # a text-only product takes the image of a real product of its type and colour (else its type)
            by_key: dict = {}
            for i, r in enumerate(c["rowid"]):
                if r in c["image_at"]:
                    by_key.setdefault((c["type"][i], c["colour"][i]), []).append(c["image_at"][r])
                    by_key.setdefault((c["type"][i], ""), []).append(c["image_at"][r])
            any_image = list(c["image_at"].values())
            c["image_of"] = np.array([c["image_at"].get(r, (by_key.get((c["type"][i], c["colour"][i]))
                                                             or by_key.get((c["type"][i], "")) or any_image)[0])
                                      for i, r in enumerate(c["rowid"])])
            colours = {}
            words = {}
            for i, (title, colour) in enumerate(zip(c["title"], c["colour"])):
                if colour:
                    colours.setdefault(colour, []).append(i)
                for w in set(_WORD.findall(title.lower())):
                    words.setdefault(w, []).append(i)
            colour_words = {w for col in colours for w in col.lower().split()}
            words = {w: np.array(ix) for w, ix in words.items() if w not in colour_words}
            colours = {k: np.array(v) for k, v in colours.items()}
            c["colour_text"] = _directions(colours, c["text"], 5)
            c["colour_image"] = _directions(colours, c["image"][c["image_of"]], 5)
            c["word_text"] = _directions(words, c["text"], max(3, min(12, len(c["title"]) // 25)))
            c["words"] = sorted(c["word_text"])
            c["colours"] = sorted(c["colour_text"])
        self.lines = _market_lines()
        sizes = np.array([len(c["title"]) for c in self.cats], dtype=np.float64)
        self.share = sizes / sizes.sum()

    def chunk(self, start: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Products start..start+n-1 of the stream `seed`: (text vectors, image vectors, titles)."""
        rng = np.random.default_rng([seed, start])
        which = rng.choice(len(self.cats), size=n, p=self.share)
        dim = self.cats[0]["text"].shape[1]
        text = np.empty((n, dim), np.float32)
        image = np.empty((n, dim), np.float32)
        titles: list[str] = []
        for j in range(n):
            c = self.cats[which[j]]
            i = int(rng.integers(len(c["title"])))
            t = c["text"][i].copy()
            im = c["image"][c["image_of"][i]].copy()
            title, colour = c["title"][i], c["colour"][i]
            if c["colours"] and rng.random() < 0.7:  # another colour of the same product
                new = c["colours"][int(rng.integers(len(c["colours"])))]
                if colour in c["colour_text"]:
                    t -= c["colour_text"][colour]
                    im -= c["colour_image"][colour]
                t += c["colour_text"][new]
                im += c["colour_image"][new]
                title = title.replace(colour, new) if colour and colour in title else f"{title} {new}"
            word = c["words"][int(rng.integers(len(c["words"])))] if c["words"] else ""
            if word:
                t += WORD_WEIGHT * c["word_text"][word]
            line = self.lines[int(rng.integers(len(self.lines)))] if self.lines else ""
            text[j] = t + NOISE["text"] * rng.standard_normal(dim)
            image[j] = im + NOISE["image"] * rng.standard_normal(dim)
            titles.append(f"{line} {word.capitalize()} {title}".strip())
        return _unit(text), _unit(image), titles


def _market_lines(limit: int = 3000) -> list[str]:
    """Brand/line words of the market catalog (vocabulary only)."""
    if not MARKET.is_file():
        return []
    with open(MARKET, newline="", encoding="utf-8") as fh:
        counts = Counter(row.get("brand", "").strip() for row in csv.DictReader(fh))
    return sorted(b for b, _ in counts.most_common(limit) if b)


def generate(n: int, out: Path, seed: int = 0, sources: list[Path] = SOURCES) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = Model(sources)
    dim = model.cats[0]["text"].shape[1]
    text = np.lib.format.open_memmap(out / "text.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    image = np.lib.format.open_memmap(out / "image.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    with open(out / "titles.txt", "w", encoding="utf-8") as fh:
        for s in range(0, n, CHUNK):
            tv, iv, titles = model.chunk(s, min(CHUNK, n - s), seed)
            text[s:s + len(tv)], image[s:s + len(iv)] = tv, iv
            fh.write("\n".join(t.replace("\n", " ") for t in titles) + "\n")
            log(f"gen: {s + len(tv)}/{n}")
    text.flush(), image.flush()
    meta = {"n": n, "seed": seed, "fingerprint": FINGERPRINT, "sources": {c["name"]: len(c["title"]) for c in model.cats},
            "lines": len(model.lines), "noise": NOISE, "word_weight": WORD_WEIGHT,
            "seconds": round(time.perf_counter() - t0, 1)}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def stats(vectors: np.ndarray, probes: int = 500, seed: int = 1) -> dict:
    """Nearest-neighbour structure: top-1 cosine (median, 10th pct), the gap between the 10th and 11th best,
    and the share of probes with a near-duplicate (cosine >= 0.99), over `probes` random members."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(vectors), min(probes, len(vectors)), replace=False)
    q = np.asarray(vectors[np.sort(pick)], np.float32)
    best = np.full((len(q), 0), -np.inf, np.float32)
    for s in range(0, len(vectors), 100_000):
        scores = q @ np.asarray(vectors[s:s + 100_000], np.float32).T
        both = np.concatenate([best, scores], axis=1)
        best = -np.sort(-both, axis=1)[:, :12]
    top = best[:, 1:]  # the probe itself first
    return {"top1_median": round(float(np.median(top[:, 0])), 4), "top1_p10": round(float(np.percentile(top[:, 0], 10)), 4),
            "gap_10_11_median": round(float(np.median(top[:, 9] - top[:, 10])), 5),
            "near_duplicate_share": round(float((top[:, 0] >= 0.99).mean()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--stats", action="store_true", help="also compare nearest-neighbour structure with the sources")
    a = ap.parse_args()
    out = a.out or WORK / (f"products-{a.n}" + ("" if a.seed == 0 else f"-s{a.seed}"))
    meta = generate(a.n, out, a.seed)
    if a.stats:
        model_real = _read_source(SOURCES[0])
        meta["stats"] = {"real_fashion_text": stats(model_real["text"]), "real_fashion_image":
                         stats(model_real["image"]), "generated_text": stats(np.load(out / "text.npy", mmap_mode="r")),
                         "generated_image": stats(np.load(out / "image.npy", mmap_mode="r"))}
        (out / "meta.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
