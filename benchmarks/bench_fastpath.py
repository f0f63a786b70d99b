"""Fast paths, each measured against the plain path in the same run, with how much the vectors change.

Throughputs are best-of-3 (the least disturbed estimate on a shared machine). "cos" = cosine between a
vector from the fast path and the plain path for the same input (1.0 = identical); retrieval agreement
= overlap of top-10 text->image neighbours; for lite (trained) also title->own-image recall@10.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .bench_util import REPO, TINY_CONFIGS, fashion_rows, lite_available, load_model, log, percentiles, queries, \
    sample_images, torch_threads, FASHION

REPEAT = 3


def _best_rate(n: int, fn) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return round(n / best, 1)


def _lat(fn, qs: list[str]) -> dict:
    ms = []
    for q in qs:
        t = time.perf_counter()
        fn(q)
        ms.append((time.perf_counter() - t) * 1000)
    return percentiles(ms)


def _agreement(a_img, a_txt, b_img, b_txt) -> dict:
    """Vector drift and retrieval agreement between two paths over the same products."""
    cos_i = np.sum(a_img * b_img, axis=1)
    cos_t = np.sum(a_txt * b_txt, axis=1)
    ta = np.argsort(-(a_txt @ a_img.T), axis=1)[:, :10]
    tb = np.argsort(-(b_txt @ b_img.T), axis=1)[:, :10]
    overlap = float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(ta, tb)]))
    n = len(a_img)
    r10 = lambda img, txt: float(np.mean([i in row for i, row in  # noqa: E731
                                          enumerate(np.argsort(-(txt @ img.T), axis=1)[:, :10])]))
    return {"cos_image_min": round(float(cos_i.min()), 5), "cos_image_mean": round(float(cos_i.mean()), 5),
            "cos_text_min": round(float(cos_t.min()), 5), "top10_overlap": round(overlap, 3),
            "title_to_image_r10": [round(r10(a_img, a_txt), 3), round(r10(b_img, b_txt), 3)], "products": n}


# -- open_clip ViT-B-32 (random init) -----------------------------------------------------------
def openclip_paths(key: str = "vitb32", n_images: int = 64) -> dict:
    import torch

    from mmtui.encoders.openclip import encode_text_trimmed

    log(f"fastpath: {key} precision and trimming")
    enc = load_model(key)
    model = enc.model
    images = sample_images(n_images)
    titles = [r["productDisplayName"] for r in fashion_rows()[:n_images]]
    x = torch.stack([enc.preprocess(im) for im in images])
    tokens = enc.tokenizer(titles)
    qs = queries(30)
    out: dict = {"model": enc.name, "images": n_images, "batch": n_images}

    def img(dtype=None, autocast=False):
        with torch.inference_mode():
            if autocast:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return model.encode_image(x).float()
            return model.encode_image(x.to(dtype) if dtype else x).float()

    def txt(trim=True, autocast=False):
        with torch.inference_mode():
            if autocast:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return (encode_text_trimmed(model, tokens) if trim else model.encode_text(tokens)).float()
            return (encode_text_trimmed(model, tokens) if trim else model.encode_text(tokens)).float()

    def norm(t):
        t = t.numpy()
        return t / np.linalg.norm(t, axis=1, keepdims=True)

    img(); txt()
    rates = {"fp32": {"images_per_s": _best_rate(n_images, img), "texts_per_s": _best_rate(n_images, txt),
                      "texts_per_s_untrimmed": _best_rate(n_images, lambda: txt(trim=False))}}
    ref_i, ref_t = norm(img()), norm(txt())
    untrimmed_t = norm(txt(trim=False))
    out["trim_max_abs_diff"] = float(np.abs(untrimmed_t - ref_t).max())
    def one(q, trim=True):
        with torch.inference_mode():
            t = enc.tokenizer([q])
            return encode_text_trimmed(model, t) if trim else model.encode_text(t)

    rates["fp32"]["query_ms_trimmed"] = _lat(one, qs)
    rates["fp32"]["query_ms_untrimmed"] = _lat(lambda q: one(q, trim=False), qs)
    img(autocast=True)
    rates["autocast bf16"] = {"images_per_s": _best_rate(n_images, lambda: img(autocast=True)),
                              "texts_per_s": _best_rate(n_images, lambda: txt(autocast=True))}
    ac = _agreement(ref_i, ref_t, norm(img(autocast=True)), norm(txt(autocast=True)))
    model.to(torch.bfloat16)
    img(torch.bfloat16)
    rates["bf16 weights"] = {"images_per_s": _best_rate(n_images, lambda: img(torch.bfloat16)),
                             "texts_per_s": _best_rate(n_images, txt)}
    rates["bf16 weights"]["query_ms_trimmed"] = _lat(one, qs)
    bf = _agreement(ref_i, ref_t, norm(img(torch.bfloat16)), norm(txt()))
    out["rates"] = rates
    out["agreement"] = {"autocast bf16": ac, "bf16 weights": bf}
    for threads in (1,):
        with torch_threads(threads):
            out[f"bf16 weights, {threads} thread"] = {"images_per_s": _best_rate(n_images, lambda: img(torch.bfloat16))}
    del enc, model
    return out


# -- lite ---------------------------------------------------------------------------------------
def lite_paths(n_images: int = 128) -> dict:
    import torch

    from mmtui.encoders import towers
    from mmtui.encoders.lite import LiteEncoder

    log("fastpath: lite image tower formats, precision, threads")
    images = sample_images(n_images)
    titles = [r["productDisplayName"] for r in fashion_rows()
              if (FASHION / "images" / f"{r['id']}.jpg").is_file()][:n_images]
    qs = queries(40)
    enc = LiteEncoder.load("lite", device="cpu", image_bf16=False)
    out: dict = {"images": n_images, "default_image_bf16": bool(enc.config.get("cpu_image_bf16", False))}
    variant = enc.config.get("image_tower", "lite0")
    pixels = towers.images_to_array(images[:32], towers.IMAGE_SIZES[variant])
    x = towers.array_to_tensor(pixels)
    tower = enc.image_tower
    ends = towers.STAGE_ENDS[variant]

    def fwd(t, xx):
        with torch.inference_mode():
            return towers.image_taps(t, xx, ends)

    tower_rates = {}
    tower_c = tower.to(memory_format=torch.contiguous_format)
    fwd(tower_c, x)
    tower_rates["fp32 contiguous"] = _best_rate(32, lambda: fwd(tower_c, x))
    tower_cl = tower.to(memory_format=torch.channels_last)
    xcl = x.contiguous(memory_format=torch.channels_last)
    fwd(tower_cl, xcl)
    tower_rates["fp32 channels_last"] = _best_rate(32, lambda: fwd(tower_cl, xcl))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fwd(tower_cl, xcl)
        tower_rates["autocast bf16 channels_last"] = _best_rate(32, lambda: fwd(tower_cl, xcl))
    import copy

    tower_bf = copy.deepcopy(tower_cl).to(torch.bfloat16)
    xbf = xcl.to(torch.bfloat16)
    fwd(tower_bf, xbf)
    tower_rates["bf16 channels_last"] = _best_rate(32, lambda: fwd(tower_bf, xbf))
    with torch_threads(1):
        tower_rates["bf16 channels_last, 1 thread"] = _best_rate(32, lambda: fwd(tower_bf, xbf))
    out["tower_images_per_s"] = tower_rates
    # the whole encoder, fp32 vs bf16 image tower, with retrieval on real products
    enc.encode_images(images[:8])
    fp32_rate = _best_rate(n_images, lambda: enc.encode_images(images))
    a_img, a_txt = enc.encode_images(images), enc.encode_texts(titles)
    q_fp32 = _lat(lambda q: enc.encode_texts([q]), qs)
    with torch_threads(1):
        q_fp32_1t = _lat(lambda q: enc.encode_texts([q]), qs)
    text_rate = _best_rate(len(titles), lambda: enc.encode_texts(titles))
    enc_bf = LiteEncoder.load("lite", device="cpu", image_bf16=True)
    enc_bf.encode_images(images[:8])
    bf_rate = _best_rate(n_images, lambda: enc_bf.encode_images(images))
    b_img = enc_bf.encode_images(images)
    out["encoder"] = {"fp32 images_per_s": fp32_rate, "bf16 image tower images_per_s": bf_rate,
                      "texts_per_s (batch 64)": text_rate, "query_ms (2 threads)": q_fp32,
                      "query_ms (1 thread)": q_fp32_1t, "fingerprint_changes_with_bf16": enc.fingerprint !=
                      enc_bf.fingerprint}
    out["agreement bf16 image tower"] = _agreement(a_img, a_txt, b_img, a_txt)
    # bf16 text tower (MiniLM) for queries
    try:
        enc_bf.bert.to(torch.bfloat16)
        enc_bf.encode_texts(["warm up"])
        q_bf = _lat(lambda q: enc_bf.encode_texts([q]), qs)
        b_txt = enc_bf.encode_texts(titles)
        out["encoder"]["query_ms (bf16 MiniLM)"] = q_bf
        out["agreement bf16 text tower"] = _agreement(a_img, a_txt, a_img, b_txt)
    except Exception as exc:  # noqa: BLE001
        out["encoder"]["query_ms (bf16 MiniLM)"] = f"failed: {exc}"
    return out


# -- decode in parallel with encoding ---------------------------------------------------------------
def prefetch(key: str, n: int) -> dict:
    from .bench_encode import build_once

    log(f"fastpath: decode prefetch with {key}")
    enc = load_model(key)
    enc.encode_images(sample_images(8))
    res = {"model": key, "products": n}
    for label, serial in (("decode in a thread (shipped)", False), ("decode on the encoding thread", True),
                          ("decode in a thread (again)", False)):
        report, _ = build_once(enc, n, f"prefetch-{key}", serial_decode=serial)
        res[label] = report.images_per_s
    t = time.perf_counter()
    sample_images(n)
    res["decode alone images_per_s"] = round(n / (time.perf_counter() - t), 1)
    return res


# -- ANN build threads, model/index loaded once ---------------------------------------------------
def hnsw_threads(vectors: np.ndarray) -> dict:
    from mmtui.index.ann import VectorIndex

    log("fastpath: hnswlib build threads")
    labels = np.arange(len(vectors))
    out = {"vectors": len(vectors)}
    for threads in (1, 2):
        out[f"{threads} thread(s) build_s"] = round(min(VectorIndex.build("x", "m", labels, vectors, threads=threads)
                                                        .manifest.build_seconds for _ in range(2)), 2)
    # exact search (filters, small catalogs, recall checks) is one matrix-vector product: BLAS threads
    from threadpoolctl import threadpool_limits

    index = VectorIndex.build("x", "m", labels, vectors, exact_below=len(vectors) + 1)
    qs = vectors[:50]
    for label, limit in (("exact search ms, BLAS default threads", None), ("exact search ms, 1 BLAS thread", 1)):
        with threadpool_limits(limits=limit, user_api="blas"):
            ms = []
            for q in qs:
                t = time.perf_counter()
                index.exact(q, 100)
                ms.append((time.perf_counter() - t) * 1000)
        out[label] = percentiles(ms)["p50"]
    return out


def cold_cli(data_dir: Path) -> dict:
    """`mmtui search` in a fresh process (imports, store, indexes, model, one query) vs a warm service."""
    log("fastpath: cold CLI search")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMTUI_OPENCLIP_CONFIGS": str(TINY_CONFIGS)}
    exe = str(Path(sys.executable).parent / "mmtui")
    runs = []
    for q in ("navy blue shirt", "black watch for women"):
        t = time.perf_counter()
        proc = subprocess.run([exe, "search", q, "--data-dir", str(data_dir), "--json"], capture_output=True,
                              text=True, env=env, timeout=600)
        runs.append(round(time.perf_counter() - t, 2))
        if proc.returncode:
            return {"error": proc.stderr[-300:]}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mmtui.cli.main"], env=env, timeout=120)
    return {"cli_search_s": runs, "import_cli_s": round(time.perf_counter() - t, 2)}


def run(models: list[str], build_n: dict, stores: dict) -> dict:
    out: dict = {}
    if "vitb32" in models:
        out["vitb32"] = openclip_paths("vitb32")
    if "lite" in models and lite_available():
        out["lite"] = lite_paths()
    key = "lite" if "lite" in models and lite_available() else "vitb32" if "vitb32" in models else models[0]
    out["prefetch"] = prefetch(key, min(build_n.get(key, 128), 256))
    if stores:
        from mmtui.store.db import Store

        n, settings = sorted(stores.items())[-1 if len(stores) < 2 else 1]
        store = Store.open(settings.db_path)
        fp = store.get_meta("base_fingerprint")
        _, vec = store.vectors(fp, "image")
        store.close()
        out["hnsw_threads"] = hnsw_threads(vec[:10_000])
        out["cold_cli"] = {"products": n, **cold_cli(settings.data_dir)}
    return out


def markdown(result: dict) -> list[str]:
    lines: list[str] = []
    v = result.get("vitb32")
    if v:
        r = v["rates"]
        lines += [f"**{v['model']} (random init), batch {v['batch']}**", "",
                  "| path | images/s | texts/s | query ms p50 / p99 | cos vs fp32 (img min / text min) | top-10 overlap |",
                  "|---|---|---|---|---|---|"]
        q = r["fp32"]["query_ms_trimmed"]
        lines.append(f"| fp32 (shipped) | {r['fp32']['images_per_s']} | {r['fp32']['texts_per_s']} | "
                     f"{q['p50']} / {q['p99']} | 1 / 1 | 1 |")
        for label in ("autocast bf16", "bf16 weights"):
            a = v["agreement"][label]
            qq = r[label].get("query_ms_trimmed")
            qtxt = f"{qq['p50']} / {qq['p99']}" if qq else ""
            lines.append(f"| {label} | {r[label]['images_per_s']} | {r[label]['texts_per_s']} | "
                         f"{qtxt} | {a['cos_image_min']} / {a['cos_text_min']} | "
                         f"{a['top10_overlap']} |")
        u = r["fp32"]["query_ms_untrimmed"]
        lines += ["", f"End-of-text trimming (fp32): titles {r['fp32']['texts_per_s']} texts/s trimmed vs "
                  f"{r['fp32']['texts_per_s_untrimmed']} untrimmed; one query p50 {q['p50']} ms vs {u['p50']} ms; "
                  f"max |difference| {v['trim_max_abs_diff']:.2e}.", ""]
    li = result.get("lite")
    if li:
        lines += ["**lite: EfficientNet-Lite0 tower alone (32 images)**", "", "| path | images/s |", "|---|---|"]
        lines += [f"| {k} | {val} |" for k, val in li["tower_images_per_s"].items()]
        e = li["encoder"]
        a = li["agreement bf16 image tower"]
        lines += ["", "**lite encoder**", "", "| measure | value |", "|---|---|",
                  f"| images/s fp32 / bf16 image tower | {e['fp32 images_per_s']} / {e['bf16 image tower images_per_s']} |",
                  f"| bf16 image tower: cos min / mean, top-10 overlap | {a['cos_image_min']} / {a['cos_image_mean']}, "
                  f"{a['top10_overlap']} |",
                  f"| title->own image R@10 over {a['products']} products, fp32 / bf16 | {a['title_to_image_r10'][0]} / "
                  f"{a['title_to_image_r10'][1]} |",
                  f"| texts/s (batch 64) | {e['texts_per_s (batch 64)']} |",
                  f"| one query ms p50 / p99, 2 threads | {e['query_ms (2 threads)']['p50']} / "
                  f"{e['query_ms (2 threads)']['p99']} |",
                  f"| one query ms p50 / p99, 1 thread | {e['query_ms (1 thread)']['p50']} / "
                  f"{e['query_ms (1 thread)']['p99']} |"]
        qb = e.get("query_ms (bf16 MiniLM)")
        if isinstance(qb, dict):
            t = li["agreement bf16 text tower"]
            lines.append(f"| one query ms p50 / p99, bf16 MiniLM (cos min {t['cos_text_min']}, R@10 "
                         f"{t['title_to_image_r10'][1]}) | {qb['p50']} / {qb['p99']} |")
        lines.append("")
    p = result.get("prefetch")
    if p:
        lines += [f"**JPEG decode in parallel with encoding** ({p['model']}, {p['products']} products, build images/s): "
                  + ", ".join(f"{k}: {_num(val)}" for k, val in p.items() if k not in ("model", "products")), ""]
    h = result.get("hnsw_threads")
    if h:
        lines += [f"**hnswlib build threads** ({h['vectors']:,} vectors): " +
                  ", ".join(f"{k}: {_num(val)}" for k, val in h.items() if k != "vectors"), ""]
    c = result.get("cold_cli")
    if c:
        lines += [f"**Model and index loaded once**: `mmtui search` in a fresh process ({c['products']:,} products): "
                  f"{c.get('cli_search_s', c.get('error'))} s per query (importing mmtui.cli.main alone: "
                  f"{c.get('import_cli_s')} s), against milliseconds warm (see the latency table).", ""]
    return lines


def _num(value: object) -> object:
    """A float as the report prints figures (one decimal from 10 up, else 3 significant digits)."""
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return value
