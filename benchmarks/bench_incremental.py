"""Adding 10k products to an index and removing 1k without a full rebuild: the time of `reindex` after the change
(hnswlib graphs updated in place, lexical.npz updated from the changed rows only) against a full rebuild of the
same final state, and whether the results are the same.

The base is the cached synthetic store of that size (bench_query.synthetic_store under MMTUI_BENCH_WORK, the
directory `*-N-v*` with a done.json; built here when there is none). It is copied (the .db for real, the index
files as hard links: a reindex never rewrites a file, it writes a new generation), reindexed once to bring its
files to this version (lexical.npz with its update data; the ANN indexes carry over), then changed as
synthetic_store writes rows: 10k new products (real titles, real vectors with small noise) and 1k removed at
random. Then:
- incremental: `reindex` (what build-index runs after encoding), timed;
- full: the same reindex with updates and carry-overs turned off (every index built whole), timed, or the base
  store's recorded full reindex time when `--full recorded` (said so in the report);
- same results, on 200+ queries per index (text vectors of new and old products with noise, as searches are
  cross-modal): top-10 overlap between the updated and the fully rebuilt graph, and both graphs' recall@10
  against exact search (ties count); lexical: the updated index is compared array by array with a full
  lexical build, and top-20 on the benchmark's shopper queries (and a sample against FTS5 itself);
- the lexical index's file size, load time and query p50 before (the base's file as the previous version wrote
  it, without update data) and after (this version's), on the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np

from .bench_util import FASHION, WORK, log, percentiles, queries

ADD, REMOVE = 10_000, 1_000
# where the changed copies (removed at the end) and the figures so far go; MMTUI_BENCH_COPIES puts them elsewhere
# than the (possibly shared) store cache
COPIES = Path(os.environ.get("MMTUI_BENCH_COPIES") or WORK / "incremental")
N_QUERIES = 200


# -- the stores ------------------------------------------------------------------------------------
def base_store(n: int) -> Path:
    """The cached synthetic store of n products (the newest recipe version with a done.json), else one made
    here with the same recipe (rows and vectors as add_products writes them)."""
    found = sorted((p.parent for p in (WORK / "stores").glob(f"*-{n}-v*/done.json")),
                   key=lambda p: int(p.name.rsplit("-v", 1)[1]))
    if found:
        return found[-1]
    root = WORK / "incremental" / f"base-{n}"
    if (root / "done.json").is_file():
        return root
    from mmtui.config import Settings
    from mmtui.index.writer import reindex
    from mmtui.store.db import Store

    shutil.rmtree(root, ignore_errors=True)
    fp, src = sources()
    log(f"incremental: making a base store of {n} products")
    settings = Settings(data_dir=root)
    store = Store.open(settings.db_path, create=True)
    add_products(store, fp, src, 0, n, np.random.default_rng(n))
    store.set_meta("base_model", "lite")
    store.set_meta("base_fingerprint", fp)
    store.set_meta("base_dim", str(src["text"].shape[1]))
    t = time.perf_counter()
    reindex(settings, store=store)
    info = {"products": n, "reindex_s": round(time.perf_counter() - t, 1)}
    store.close()
    (root / "done.json").write_text(json.dumps(info, indent=2))
    return root


def sources(fingerprint: str | None = None) -> tuple[str, dict]:
    """(model fingerprint, {"image", "text": real vectors}) cached by bench_query.source_vectors."""
    for image in sorted((WORK / "sources").glob(f"{fingerprint or '*'}-fashion-image.npy")):
        fp = image.name.split("-fashion-")[0]
        return fp, {"image": np.load(image), "text": np.load(image.with_name(f"{fp}-fashion-text.npy"))}
    raise FileNotFoundError(f"no source vectors in {WORK / 'sources'} (run the query section once)")


def copy_store(source: Path, target: Path) -> float:
    """A copy to change: catalog.db (and its WAL) copied, the index files hard-linked. Returns seconds."""
    t = time.perf_counter()
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("catalog.db", "catalog.db-wal"):
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    for path in sorted((source / "ann").rglob("*")):
        dest = target / "ann" / path.relative_to(source / "ann")
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif path.is_file() and not path.name.startswith("."):
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, dest)
    return time.perf_counter() - t


def add_products(store, fp: str, src: dict, first: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Products syn{first}.. syn{first + count - 1} as bench_query.synthetic_store writes them (title and
    attributes of a real Fashion product, cycled; vectors of a real product with noise, cos ~0.95), with
    vectors that carry their products' content hashes. Returns their rowids."""
    from benchmarks.bench_query import _noisy
    from mmtui.build.pipeline import _record
    from mmtui.catalog.text import combined_text
    from mmtui.catalog.fashion import read_fashion_file
    from mmtui.catalog.records import Product
    from mmtui.store.db import sha1_text

    base = [p for p in read_fashion_file(FASHION / "styles-text-only.csv", with_images=False)
            if isinstance(p, Product)]
    n_img = len(src["image"])
    for s in range(first, first + count, 20_000):
        records = []
        for i in range(s, min(s + 20_000, first + count)):
            p = base[i % len(base)]
            cycle = i // len(base)
            q = Product(id=f"syn{i}", title=p.title if not cycle else f"{p.title} {cycle + 1}",
                        category=p.category, colour=p.colour, gender=p.gender, attributes=dict(p.attributes),
                        row=i + 1)
            q.text = combined_text(q)
            q.image_status = "ok"
            q.image_path = str(FASHION / "images" / "missing.jpg")
            q.image_sha = sha1_text(f"img{i % n_img}")
            records.append(_record(q, "synthetic"))
        with store.db.conn:
            store.upsert_products(records)
    ids = [f"syn{i}" for i in range(first, first + count)]
    found = store.rowid_of(ids)
    rowids = np.array([found[i] for i in ids], dtype=np.int64)
    index = np.arange(first, first + count)
    for kind, column in (("image", "image_sha"), ("text", "text_sha")):
        vec = _noisy(src[kind], index % len(src[kind]), rng)
        for s in range(0, count, 5000):
            chunk = rowids[s:s + 5000].tolist()
            marks = ",".join("?" * len(chunk))
            sha = dict(store.db.execute(f"SELECT rowid, {column} FROM products WHERE rowid IN ({marks})", chunk))
            store.put_vectors(fp, kind, chunk, [sha[r] for r in chunk], vec[s:s + 5000])
    return rowids


def full_reindex(settings, store, progress=None):
    """reindex with every index built whole: no carried-over file, no update."""
    from mmtui.index import writer as indexing
    from mmtui.index.lexical import LexicalIndex

    def build_lexical(gen, conn):
        LexicalIndex.build(conn).save(gen.dir)
        return "built"

    with mock.patch.object(indexing, "_reusable", lambda *a, **k: None), \
            mock.patch.object(indexing, "_updated", lambda *a, **k: None), \
            mock.patch.object(indexing, "write_lexical_index", build_lexical):
        return indexing.reindex(settings, store=store, progress=progress)


def _lexical_in_this_format(gen, conn):
    """write_lexical_index, but a file of the previous format (which answers queries, and would be carried
    over) is built again in this one, so the change that follows can update it."""
    from mmtui.index.lexical import FILE, LexicalIndex, write_lexical_index

    old = gen.base
    if old is not None and old.has(FILE):
        with np.load(old.dir / FILE) as data:
            fmt = json.loads(data["meta"].tobytes().decode("utf-8")).get("format")
        if "sigs" not in data.files:
            LexicalIndex.build(conn).save(gen.dir)
            return f"built (the base's file has format {fmt}, without update data)"
    return write_lexical_index(gen, conn)


# -- comparing -------------------------------------------------------------------------------------
def _raw_lexical(path: Path):
    """A saved lexical.npz of any format with the query arrays (to time the previous version's file)."""
    from mmtui.index.lexical import LexicalIndex

    with np.load(path) as data:
        meta = json.loads(data["meta"].tobytes().decode("utf-8"))
        terms = json.loads(data["terms"].tobytes().decode("utf-8"))
        return LexicalIndex(rowids=data["rowids"], terms=terms, offsets=data["offsets"], docs=data["docs"],
                            factors=data["factors"], n_rows=int(meta["n_rows"]), meta=meta)


def lexical_costs(path: Path, qs: list[str], repeat: int = 3) -> dict:
    """File size, load time (best of `repeat`, as FastLexical loads it) and query p50 (top 20)."""
    from mmtui.store.db import fts_words

    loads = []
    for _ in range(repeat):
        t = time.perf_counter()
        index = _raw_lexical(path)
        loads.append(time.perf_counter() - t)
    with zipfile.ZipFile(path) as z:
        members = {i.filename.removesuffix(".npy"): round(i.file_size / 1e6, 1) for i in z.infolist()}
    tokens = [index.phrase_tokens(fts_words(q)) for q in qs]
    for tok in tokens[:10]:
        index.search(tok or [], 20)
    ms = []
    for tok in tokens:
        t = time.perf_counter()
        index.search(tok or [], 20)
        ms.append((time.perf_counter() - t) * 1000)
    return {"file_mb": round(path.stat().st_size / 1e6, 1), "members_mb": members,
            "load_s": round(min(loads), 3), "query_ms": percentiles(ms)}


def ann_same_results(inc_dir: Path, full_dir: Path | None, space: str, queries_by_name: dict) -> dict:
    from mmtui.index.ann import VectorIndex

    out = {}
    for name, qv in queries_by_name.items():
        inc = VectorIndex.load(inc_dir, name, space)
        row = {"queries": len(qv), "updated": inc.manifest.extra.get("update"),
               "deleted_slots": inc.manifest.extra.get("deleted_slots", 0),
               "recall_at_10_updated": round(inc.recall_check(qv), 4)}
        if full_dir is not None:
            full = VectorIndex.load(full_dir, name, space)
            assert full.manifest.extra["digest"] == inc.manifest.extra["digest"], "different inputs"
            row["recall_at_10_full"] = round(full.recall_check(qv), 4)
            a = inc._graph_results(qv, 10)
            b = full._graph_results(qv, 10)
            row["top10_overlap"] = round(float(np.mean([len(set(x.tolist()) & set(y.tolist())) / 10
                                                        for x, y in zip(a, b)])), 4)
        out[name] = row
    return out


def lexical_same_results(store, gen_dir: Path, qs: list[str], fts_sample: int = 40) -> dict:
    from mmtui.index.lexical import LexicalIndex
    from mmtui.store.db import fts_words

    t = time.perf_counter()
    full = LexicalIndex.build(store.db.conn)
    build_s = time.perf_counter() - t
    inc = LexicalIndex.load(gen_dir, full=True)
    arrays = {k: bool(np.array_equal(getattr(inc, k), getattr(full, k)))
              for k in ("rowids", "offsets", "docs", "factors", "freqs", "lengths", "sigs")}
    arrays["terms"] = inc.term_list == full.term_list
    same = 0
    for q in qs:
        tok = inc.phrase_tokens(fts_words(q)) or []
        same += inc.search(tok, 20) == full.search(tok, 20)
    # and against FTS5 itself, through the store (the fast path declines only if the index is stale)
    from mmtui.index.backends.local import lexical_hits
    from mmtui.index.lexical import FastLexical

    fast = FastLexical(gen_dir)
    fts_same = 0
    for q in qs[:fts_sample]:
        got = lexical_hits(store, fast, q, 20)
        ref = store.lexical(q, 20)
        fts_same += [r for r, _ in got] == [r for r, _ in ref] and all(
            abs(a - b) <= 1e-9 for (_, a), (_, b) in zip(got, ref))
    return {"full_lexical_build_s": round(build_s, 1), "identical_arrays": arrays,
            "top20_identical": f"{same}/{len(qs)}", "top20_same_as_fts5": f"{fts_same}/{min(fts_sample, len(qs))}",
            "update": inc.meta.get("update")}


# -- the section -----------------------------------------------------------------------------------
def _checkpoint(n: int, r: dict) -> None:
    """The figures so far, in case a long step (the full rebuild at 1M) is stopped."""
    path = COPIES / f"result-{n}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(r, indent=2, default=str))


def run(sizes: list[int], full: str = "measured", n_queries: int = N_QUERIES, keep: bool = False) -> dict:
    from mmtui.index import writer as indexing
    from mmtui.config import Settings
    from mmtui.index.generations import current
    from mmtui.index.writer import reindex
    from mmtui.index.lexical import FILE
    from mmtui.encoders.projection import search_space
    from mmtui.store.db import Store

    out: dict = {"add": ADD, "remove": REMOVE, "full": full, "sizes": {}}
    qs = queries(n_queries)
    for n in sizes:
        base = base_store(n)
        info = json.loads((base / "done.json").read_text())
        work = COPIES / f"copy-{n}"
        log(f"incremental {n}: copying {base}")
        r: dict = {"base": str(base), "copy_s": round(copy_store(base, work), 1)}
        settings = Settings(data_dir=work)
        store = Store.open(settings.db_path)
        try:
            space, _ = search_space(store, settings)
            fp = store.get_meta("base_fingerprint")
            before = current(settings.ann_dir)
            old_lexical = before.dir / FILE if before and before.has(FILE) else None
            events: list[str] = []
            log(f"incremental {n}: bringing the copy's files to this version")
            t = time.perf_counter()
            with mock.patch.object(indexing, "write_lexical_index", _lexical_in_this_format):
                reindex(settings, store=store, progress=lambda e: events.append(e.message))
            r["prepare_s"] = round(time.perf_counter() - t, 1)
            r["prepare_events"] = [e for e in events if "index" in e and "building" not in e]
            primed = current(settings.ann_dir)
            lex_after_base = primed.dir / FILE
            costs = {"after (this version)": lexical_costs(lex_after_base, qs)}
            if old_lexical is not None and old_lexical.is_file() and not os.path.samefile(old_lexical, lex_after_base):
                costs["before (previous version's file)"] = lexical_costs(old_lexical, qs)
            r["lexical_costs_on_the_base"] = costs
            # the change
            rng = np.random.default_rng(14)
            _, src = sources(fp)
            t = time.perf_counter()
            existing = np.fromiter((x for (x,) in store.db.execute("SELECT rowid FROM products")), dtype=np.int64)
            gone = rng.choice(existing, REMOVE, replace=False)
            first = int(info.get("products") or store.product_count())  # syn0.. are the base products
            new_rowids = add_products(store, fp, src, first, ADD, rng)
            ids = [row["id"] for row in store.rows(gone.tolist())]
            with store.db.conn:
                store.delete_products(ids)
            r["change_s"] = round(time.perf_counter() - t, 1)
            r["products_after"] = store.product_count()
            # incremental
            log(f"incremental {n}: reindex after the change")
            events = []
            t = time.perf_counter()
            results = reindex(settings, store=store, progress=lambda e: events.append(
                f"{time.perf_counter() - t:.1f} s: {e.message}"))
            r["incremental_s"] = round(time.perf_counter() - t, 1)
            r["incremental_load_average_end"] = [round(x, 2) for x in os.getloadavg()]  # the 2 cores are shared
            r["incremental_events"] = events  # seconds since the start when each step began or ended
            r["incremental_recall_self_check"] = {k: v[0] for k, v in results.items()}
            inc_gen = current(settings.ann_dir)
            # same results: the updated indexes against exact search, the lexical one against a full build
            labels = np.load(inc_gen.dir / "text.labels.npy")
            new_pos = np.flatnonzero(np.isin(labels, new_rowids))
            old_pos = np.flatnonzero(~np.isin(labels, new_rowids))
            pick = np.sort(np.concatenate([rng.choice(new_pos, n_queries // 2, replace=False),
                                           rng.choice(old_pos, n_queries - n_queries // 2, replace=False)]))
            from benchmarks.bench_query import _noisy

            qv = _noisy(np.load(inc_gen.dir / "text.vectors.npy", mmap_mode="r"), pick, rng)
            by_name = {"image": qv, "text": qv, "fused": qv}
            r["ann"] = ann_same_results(inc_gen.dir, None, space, by_name)
            r["lexical"] = lexical_same_results(store, inc_gen.dir, qs)
            r["lexical"]["after the change"] = lexical_costs(inc_gen.dir / FILE, qs)
            indexed = set(np.load(inc_gen.dir / "image.labels.npy").tolist())
            r["removed_still_indexed"] = len(set(gone.tolist()) & indexed)
            r["full_s"] = info.get("reindex_s")
            r["full_s_from"] = (f"the base store's recorded full reindex ({info.get('products')} products, "
                                f"{base / 'done.json'}); the changed state has {r['products_after']}")
            r["ratio"] = round(r["incremental_s"] / r["full_s"], 4) if r.get("full_s") else None
            _checkpoint(n, r)
            # full rebuild of the same final state
            if full == "measured":
                log(f"incremental {n}: full rebuild of the same state")
                t = time.perf_counter()
                events = []
                full_reindex(settings, store, progress=lambda e: events.append(
                    f"{time.perf_counter() - t:.1f} s: {e.message}"))
                r["full_events"] = events
                r["full_s"] = round(time.perf_counter() - t, 1)
                r["full_load_average_end"] = [round(x, 2) for x in os.getloadavg()]
                r["recorded_full_s"] = r.pop("full_s_from") and info.get("reindex_s")
                r["ratio"] = round(r["incremental_s"] / r["full_s"], 4)
                r["ann"] = ann_same_results(inc_gen.dir, current(settings.ann_dir).dir, space, by_name)
                _checkpoint(n, r)
        finally:
            store.close()
            if not keep:
                shutil.rmtree(work, ignore_errors=True)
        out["sizes"][str(n)] = r
        log(f"incremental {n}: {r['incremental_s']} s against {r['full_s']} s full ({r['ratio']})")
    return out


def targets(result: dict) -> list[dict]:
    out = []
    for n, r in result.get("sizes", {}).items():
        ratio = r.get("ratio")
        same = min((a.get("top10_overlap", 1.0) for a in r["ann"].values()), default=None)
        out.append({"target": f"add {result['add'] // 1000}k and remove {result['remove'] // 1000}k products at "
                              f"{int(n) // 1000}k in <= 10% of a full rebuild's time",
                    "value": f"{r['incremental_s']} s against {r['full_s']} s ({ratio:.1%}"
                             + ("; full time as recorded for the base store" if r.get("full_s_from") else "")
                             + f"); top-10 overlap with a full rebuild >= {same}, lexical top-20 identical "
                               f"{r['lexical']['top20_identical']}",
                    "met": ratio is not None and ratio <= 0.10})
    return out


def markdown(result: dict) -> list[str]:
    lines = [f"{result['add']:,} products added (real titles, real vectors with noise) and {result['remove']:,} "
             "removed "
             "at random, then `reindex` (what build-index runs after encoding); full = the same reindex with "
             "every index built whole" + (" (measured)" if result["full"] == "measured" else
                                          " (the base store's recorded reindex time)") + ".", "",
             "| products | incremental s | full s | ratio | recall@10 updated (image/text/fused) | "
             "recall@10 full | top-10 overlap updated vs full | deleted slots | lexical |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n, r in result["sizes"].items():
        a = r["ann"]
        rec = "/".join(str(a[k]["recall_at_10_updated"]) for k in ("image", "text", "fused"))
        rec_full = "/".join(str(a[k].get("recall_at_10_full", "-")) for k in ("image", "text", "fused"))
        ov = "/".join(str(a[k].get("top10_overlap", "-")) for k in ("image", "text", "fused"))
        lex = r["lexical"]
        same_arrays = all(lex["identical_arrays"].values())
        lines.append(f"| {int(n):,} | {r['incremental_s']} | {r['full_s']} | {r['ratio']:.1%} | {rec} | {rec_full} | "
                     f"{ov} | {a['image']['deleted_slots']} | top-20 identical {lex['top20_identical']}, same as "
                     f"FTS5 {lex['top20_same_as_fts5']}, arrays {'identical' if same_arrays else 'differ'} to a full "
                     f"build ({lex['full_lexical_build_s']} s) |")
    lines += ["", "Lexical index on the base store: file, load and query cost, the previous version's file against "
              "this version's (which also keeps f, D and a row digest for updates; a query does not load them):", "",
              "| products | file | MB | load s | query p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for n, r in result["sizes"].items():
        for label, c in r["lexical_costs_on_the_base"].items():
            lines.append(f"| {int(n):,} | {label} | {c['file_mb']} | {c['load_s']} | {c['query_ms']['p50']} | "
                         f"{c['query_ms']['p99']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--full", choices=("measured", "recorded"), default="measured")
    parser.add_argument("--queries", type=int, default=N_QUERIES)
    parser.add_argument("--keep", action="store_true", help="keep the changed copy")
    args = parser.parse_args()
    result = run([int(s) for s in args.sizes.split(",")], args.full, args.queries, args.keep)
    print(json.dumps(result, indent=2))
    print("\n".join(markdown(result)))


if __name__ == "__main__":
    main()
