"""Make sample_catalog/: a deterministic, stratified subset of the Fashion catalog (styles.csv + images).

    python scripts/make_sample_catalog.py --source path/to/fashion-product-images --out sample_catalog --n 800

Selection (depends only on the source files, so it is the same on every run):
1. every product gets a stable pseudo-random rank, sha1("mmtui-sample:" + id);
2. coverage: for every value of gender, masterCategory, subCategory, articleType, baseColour, season
   and usage, the best-ranked products with that value are taken (up to 2 each);
3. fill: the remaining places go round-robin over article types (best rank first) with quotas
   proportional to the square root of each type's size, so big types dominate less than in the source.
The rows are written exactly as they appear in the source styles.csv, in source order.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmtui.catalog.fashion import FASHION_COLUMNS, _split_line  # noqa: E402
from mmtui.catalog.splits import split_of  # noqa: E402

COVER = ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage")
PER_VALUE = 2


def rank(pid: str) -> str:
    return hashlib.sha1(f"mmtui-sample:{pid}".encode()).hexdigest()


def select(rows: list[dict[str, str]], n: int) -> list[str]:
    """Ids of the chosen rows (see the module docstring)."""
    ordered = sorted(rows, key=lambda r: rank(r["id"]))
    chosen: dict[str, dict[str, str]] = {}
    for col in COVER:
        for value in sorted({r[col] for r in ordered if r[col]}):
            have = sum(1 for r in chosen.values() if r[col] == value)
            for r in ordered:
                if have >= PER_VALUE or len(chosen) >= n:
                    break
                if r[col] == value and r["id"] not in chosen:
                    chosen[r["id"]] = r
                    have += 1
    by_type: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in ordered:
        by_type[r["articleType"]].append(r)
    weights = {t: math.sqrt(len(rs)) for t, rs in by_type.items()}
    total_w = sum(weights.values())
    quota = {t: max(1, round(n * w / total_w)) for t, w in weights.items()}
    queues = {t: [r for r in rs if r["id"] not in chosen] for t, rs in sorted(by_type.items())}
    count = Counter(r["articleType"] for r in chosen.values())
    while len(chosen) < n:
        progressed = False
        for t, queue in queues.items():
            if len(chosen) >= n:
                break
            if queue and count[t] < quota[t]:
                r = queue.pop(0)
                chosen[r["id"]] = r
                count[t] += 1
                progressed = True
        if not progressed:  # every quota met: raise them all by one
            if not any(queues.values()):
                break
            quota = {t: q + 1 for t, q in quota.items()}
    return list(chosen)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, default=Path("/work/shared/catalogs/fashion"))
    ap.add_argument("--out", type=Path, default=Path("sample_catalog"))
    ap.add_argument("--n", type=int, default=800)
    args = ap.parse_args(argv)

    lines = (args.source / "styles.csv").read_text(encoding="utf-8").splitlines()
    header, body = lines[0], [line for line in lines[1:] if line.strip()]
    rows = []
    for line in body:
        fields = _split_line(line)
        if len(fields) < len(FASHION_COLUMNS):
            continue
        fields = fields[:9] + [",".join(fields[9:])]
        row = dict(zip(FASHION_COLUMNS, (f.strip() for f in fields)))
        if (args.source / "images" / f"{row['id']}.jpg").is_file():
            row["_line"] = line
            rows.append(row)
    ids = set(select(rows, args.n))
    picked = [r for r in rows if r["id"] in ids]  # source order

    (args.out / "images").mkdir(parents=True, exist_ok=True)
    for old in (args.out / "images").glob("*.jpg"):
        if old.stem not in ids:
            old.unlink()
    with (args.out / "styles.csv").open("w", encoding="utf-8", newline="") as fh:
        fh.write(header + "\n")
        for r in picked:
            fh.write(r["_line"] + "\n")
    for r in picked:
        shutil.copyfile(args.source / "images" / f"{r['id']}.jpg", args.out / "images" / f"{r['id']}.jpg")

    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    splits = Counter(split_of(r["id"]) for r in picked)
    print(f"{len(picked)} products, {size / 1e6:.1f} MB, splits {dict(sorted(splits.items()))}")
    for col in ("gender", "masterCategory", "articleType", "baseColour"):
        got, all_ = {r[col] for r in picked}, {r[col] for r in rows}
        print(f"{col}: {len(got)} of {len(all_)} values")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
