"""Shared helpers of the benchmark sections: timing, the machine, catalog subsets, model loading."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FASHION = Path(os.environ.get("MMTUI_FASHION", "/work/shared/catalogs/fashion"))
TINY_CONFIGS = REPO / "tests" / "fixtures" / "openclip"
# cached synthetic stores and built indexes (git-ignored); MMTUI_BENCH_WORK puts them elsewhere (a bigger disk, or
# one cache shared by several clones: the 1M store takes ~7 GB and most of an hour to make)
WORK = Path(os.environ.get("MMTUI_BENCH_WORK") or REPO / "benchmarks" / ".work")

MODELS = {
    "lite": "lite",
    "tiny": "openclip:mmtui-tiny",  # a 2-layer CLIP: the pipeline's own overhead dominates
    "vitb32": "openclip:ViT-B-32",  # random-init ViT-B-32: a realistic CLIP cost, no download
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "p50": round(float(np.percentile(a, 50)), 2), "p90": round(float(np.percentile(a, 90)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "mean": round(float(a.mean()), 2),
            "max": round(float(a.max()), 2)}


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best-of-`repeat` wall seconds of fn() (best-of is the least noisy estimate on a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict:
    """CPU model, ISA flags that matter for inference (AMX, AVX-512 BF16/VNNI), cores, RAM, library versions."""
    info: dict = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        flags = set(re.search(r"^flags\s*:\s*(.+)$", text, re.M).group(1).split())
        info["cpu_model"] = model.group(1).strip() if model else platform.processor()
        wanted = ["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile",
                  "avx512_fp16"]
        info["cpu_flags"] = [f for f in wanted if f in flags]
        info["amx"] = "amx_bf16" in flags
        fam = re.search(r"^cpu family\s*:\s*(\d+)$", text, re.M)
        mod = re.search(r"^model\s*:\s*(\d+)$", text, re.M)
        info["cpu_family_model"] = f"{fam.group(1)}/{mod.group(1)}" if fam and mod else ""
        info["hypervisor"] = "hypervisor" in flags
    except (OSError, AttributeError):
        info["cpu_model"] = platform.processor()
    try:
        mem = Path("/proc/meminfo").read_text()
        kb = int(re.search(r"MemTotal:\s+(\d+)", mem).group(1))
        info["ram_gb"] = round(kb / 1024 / 1024, 1)
    except (OSError, AttributeError):
        pass
    import hnswlib  # noqa: F401
    import torch

    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    info["mkldnn_bf16"] = bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    info["numpy"] = np.__version__
    for pkg in ("hnswlib", "open_clip_torch", "textual", "transformers", "sqlite-utils"):
        try:
            from importlib.metadata import version

            info[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - a missing package is just not reported
            pass
    import sqlite3

    info["sqlite"] = sqlite3.sqlite_version
    info["load_average"] = [round(x, 2) for x in load_average()]
    try:
        info["git_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


# -- catalog data -------------------------------------------------------------------------------
def fashion_rows(path: Path | None = None) -> list[dict]:
    """Rows of a Fashion styles file (the title may contain unquoted commas: they belong to the title)."""
    path = path or FASHION / "styles.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    header = lines[0].strip().split(",")
    out = []
    for line in lines[1:]:
        if not line.strip():
            continue
        parts = line.rstrip("\r").split(",")
        if len(parts) > len(header):
            parts = parts[:len(header) - 1] + [",".join(parts[len(header) - 1:])]
        if len(parts) < len(header):
            continue
        out.append(dict(zip(header, parts)))
    return out


def subset_catalog(n: int, folder: Path) -> Path:
    """A Fashion folder with the first n products that have an image (images symlinked, not copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    src = (FASHION / "styles.csv").read_text(encoding="utf-8").split("\n")
    kept = [src[0]]
    for line in src[1:]:
        pid = line.split(",", 1)[0]
        if pid and (FASHION / "images" / f"{pid}.jpg").is_file():
            kept.append(line)
        if len(kept) > n:
            break
    (folder / "styles.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    link = folder / "images"
    if not link.exists():
        link.symlink_to(FASHION / "images")
    return folder


def sample_images(n: int, min_side: int | None = None) -> list:
    """The first n Fashion images, decoded to RGB as build-index decodes them for a model whose input side is
    min_side (same order as subset_catalog)."""
    from mmtui.catalog.images import load_image

    rows = [r for r in fashion_rows() if (FASHION / "images" / f"{r['id']}.jpg").is_file()][:n]
    return [load_image(FASHION / "images" / f"{r['id']}.jpg", min_side) for r in rows]


def large_photo_catalog(n: int, side: int, folder: Path) -> Path:
    """subset_catalog's first n products with their images enlarged to side x 4/3 side JPEGs (quality 90), as
    photos straight from a shop's export are (the Fashion images are 224 px)."""
    from PIL import Image

    subset = subset_catalog(n, folder.parent / f"fashion-{n}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "styles.csv").write_text((subset / "styles.csv").read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "images").mkdir(exist_ok=True)
    for line in (folder / "styles.csv").read_text(encoding="utf-8").split("\n")[1:]:
        pid = line.split(",", 1)[0]
        out = folder / "images" / f"{pid}.jpg"
        if pid and not out.exists():
            with Image.open(FASHION / "images" / f"{pid}.jpg") as img:
                img.convert("RGB").resize((side, side * 4 // 3), Image.BICUBIC).save(out, quality=90)
    return folder


def queries(n: int = 100, seed: int = 0) -> list[str]:
    """Short shopper-style queries from catalog attributes, e.g. 'navy blue casual shirts for men'."""
    rows = fashion_rows(FASHION / "styles-text-only.csv")
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    shapes = [
        lambda r: f"{r['baseColour']} {r['articleType']}",
        lambda r: f"{r['baseColour']} {r['articleType']} for {r['gender']}",
        lambda r: f"{r['usage']} {r['articleType']} {r['season']}",
        lambda r: " ".join(r["productDisplayName"].split()[:4]),
        lambda r: r["productDisplayName"],
    ]
    for i in rng.permutation(len(rows)):
        r = rows[int(i)]
        q = shapes[len(out) % len(shapes)](r).strip().lower()
        if q and q not in seen and len(q) > 3:
            seen.add(q)
            out.append(q)
        if len(out) >= n:
            break
    return out


# -- models -------------------------------------------------------------------------------------
def load_model(key_or_spec: str, **kwargs):
    """An Encoder for a key of MODELS (or a spec); the tiny open_clip config is registered first."""
    os.environ.setdefault("MMTUI_OPENCLIP_CONFIGS", str(TINY_CONFIGS))
    spec = MODELS.get(key_or_spec, key_or_spec)
    if spec == "lite" or spec.startswith("lite:"):
        from mmtui.encoders.lite import LiteEncoder

        return LiteEncoder.load(spec, device="cpu", **kwargs)
    from mmtui.encoders import load_encoder

    return load_encoder(spec, device="cpu")


def lite_available() -> bool:
    from mmtui.encoders.lite import default_weights

    w = default_weights()
    return w.is_file() and w.with_suffix(".json").is_file()


def rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ensure_query_model(settings, encoder) -> dict:
    """The torch-free query model (mmtui.build.query_model) in a benchmark's data dir, as build-index leaves it:
    linked from another cached data dir under WORK that holds the same export, else exported (once)."""
    import shutil

    from mmtui.build.query_model import export_query_model, plan
    from mmtui.encoders import onnx_files

    key, _ = plan(settings, encoder)
    if key is not None and onnx_files.usable(settings.data_dir, key)[0] is None:
        for other in WORK.glob(f"**/{onnx_files.FOLDER}/{key}"):
            if onnx_files.usable(other.parent.parent, key)[0] is not None:
                target = onnx_files.folder(settings.data_dir, key)
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(other, target, copy_function=os.link)
                return {"status": "linked", "key": key, "from": str(other)}
    return export_query_model(settings, encoder)
