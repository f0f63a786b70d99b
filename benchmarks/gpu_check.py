"""Does mmtui work on this GPU, and how fast? One page, in a few minutes, on a machine with one CUDA device.

    scripts/gpu_check.sh [--keep DIR] [--device cuda:0] [--products N]
    .venv/bin/python -m benchmarks.gpu_check ...          (the same)

Runs the real commands in this process (so it can read the GPU's peak memory after each):
  1. `mmtui build-index sample_catalog --device cuda` (lite: towers on the GPU, adaptation too);
  2. `mmtui train finetune --epochs 1` on that index (lite: both towers' tails, bf16 autocast);
  3. `mmtui build-index sample_catalog --model openclip:mmtui-tiny --device cuda` and `train finetune --epochs 1`
     on it (the tiny random open_clip config of the tests: the open_clip path with fp16 autocast + GradScaler);
  4. `mmtui train adapter` on the lite index;
  5. the same products encoded by the lite model on the CPU and on the GPU: cosine of each pair of vectors and
     how many of each title's top 10 pictures agree.
Then prints images/s, epoch time and peak GPU memory per step, and the vector check, with a verdict. Without CUDA
it says so and exits 0 (nothing to check). Expect ~3-6 minutes on one mid-range GPU (most of it is the CPU side
of step 5 and reading JPEGs); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_catalog"
TINY_CONFIGS = REPO / "tests" / "fixtures" / "openclip"
COSINE_OK = 0.99  # bf16/tf32 on the GPU vs fp32 on the CPU: the same vectors up to rounding
OVERLAP_OK = 0.9  # share of each title's top 10 pictures the two devices agree on


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="gpu_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="the CUDA device to check (default: cuda)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the data dirs here (default: a temporary folder)")
    ap.add_argument("--products", type=int, default=256, help="products encoded on both devices (default 256)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON after the page")
    args = ap.parse_args(argv)
    if not args.device.startswith("cuda"):
        ap.error("--device must be cuda or cuda:N")
    if args.products < 11:
        ap.error("--products must be at least 11 (a top 10 needs more than 10 pictures)")
    return args


def cuda_status(device: str) -> tuple[bool, str]:
    """(usable, what was found) for `device`."""
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} sees no CUDA device (CUDA build: {torch.version.cuda or 'none'})"
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        return False, f"{device} does not exist ({torch.cuda.device_count()} CUDA device(s))"
    props = torch.cuda.get_device_properties(index)
    return True, f"{props.name}, {props.total_memory / 2**30:.1f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}"


# -- the steps ------------------------------------------------------------------------------------------

def run_cli(args: list[str], log: io.TextIOBase) -> tuple[str, float, float]:
    """One mmtui command in this process: (its stdout, wall seconds, peak GPU memory in MiB during it)."""
    import torch

    from mmtui.cli.main import cli

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    buffer = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(log):
        try:
            cli.main(args, standalone_mode=False)
        except SystemExit as exc:  # click's exit with code 0 is fine
            if exc.code not in (0, None):
                raise RuntimeError(f"mmtui {' '.join(args)} exited with {exc.code}") from exc
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    log.write(buffer.getvalue())
    return buffer.getvalue(), seconds, torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0


def last_epoch_seconds(data_dir: Path) -> float | None:
    """The epoch time recorded by the newest training run under `data_dir` (history.json), if any."""
    histories = sorted(data_dir.rglob("history.json"), key=lambda p: p.stat().st_mtime)
    if not histories:
        return None
    rows = json.loads(histories[-1].read_text())
    rows = rows.get("history", rows) if isinstance(rows, dict) else rows
    times = [float(r["seconds"]) for r in rows if isinstance(r, dict) and "seconds" in r]
    if not times:
        return None
    return times[0] if len(times) == 1 else times[-1] - times[-2]


def build_step(name: str, data_dir: Path, device: str, log, *extra: str) -> dict:
    out, seconds, peak = run_cli(["build-index", str(SAMPLE), "--data-dir", str(data_dir), "--device", device,
                                  "--json", *extra], log)
    report = json.loads(out[out.index("{"):])
    images = report.get("encoded_images") or 0
    rate = images / report["image_seconds"] if report.get("image_seconds") else None
    return {"step": name, "seconds": round(seconds, 1), "images_per_s": round(rate, 1) if rate else None,
            "epoch_s": None, "peak_mib": round(peak), "note": f"{images} images, adaptation: "
            f"{(report.get('adaptation') or {}).get('status', '-')}"}


def train_step(name: str, data_dir: Path, device: str, log, *command: str) -> dict:
    _, seconds, peak = run_cli(["train", *command, "--data-dir", str(data_dir), "--device", device], log)
    return {"step": name, "seconds": round(seconds, 1), "images_per_s": None,
            "epoch_s": last_epoch_seconds(data_dir), "peak_mib": round(peak), "note": ""}


def compare_devices(device: str, n: int) -> dict:
    """The first `n` sample products encoded by the lite model on the CPU and on `device`."""
    import csv

    from PIL import Image

    from mmtui.encoders.lite import LiteEncoder

    with open(SAMPLE / "styles.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if (SAMPLE / "images" / f"{r['id']}.jpg").is_file()][:n]
    images = [Image.open(SAMPLE / "images" / f"{r['id']}.jpg").convert("RGB") for r in rows]
    titles = [r["productDisplayName"] for r in rows]
    vectors = {}
    for where in ("cpu", device):
        encoder = LiteEncoder.load("lite", device=where)
        vectors[where] = (encoder.encode_images(images), encoder.encode_texts(titles))
    return vector_agreement(*vectors["cpu"], *vectors[device])


def vector_agreement(cpu_img, cpu_txt, gpu_img, gpu_txt, k: int = 10) -> dict:
    """Cosine of each product's CPU and GPU vectors (pictures, titles) and the mean share of each title's top-k
    pictures both devices agree on."""
    import numpy as np

    def cos(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    def top(t, i):
        return np.argsort(-(np.asarray(t, np.float64) @ np.asarray(i, np.float64).T), axis=1)[:, :k]

    ci, ct = cos(cpu_img, gpu_img), cos(cpu_txt, gpu_txt)
    a, b = top(cpu_txt, cpu_img), top(gpu_txt, gpu_img)
    overlap = float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a.tolist(), b.tolist())]))
    return {"n": len(ci), "image_cos_min": float(ci.min()), "image_cos_mean": float(ci.mean()),
            "text_cos_min": float(ct.min()), "text_cos_mean": float(ct.mean()), "top10_overlap": overlap}


# -- the page -------------------------------------------------------------------------------------------

def render(device_info: str, steps: list[dict], vectors: dict | None, total_s: float) -> str:
    """The one-page report."""
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lines = [f"mmtui GPU check: {device_info}", "",
             f"{'step':34s} {'wall s':>7s} {'images/s':>9s} {'epoch s':>8s} {'peak MiB':>9s}  note"]
    for s in steps:
        lines.append(f"{s['step']:34s} {fmt(s['seconds'], '7.1f')} {fmt(s['images_per_s'], '9.1f')} "
                     f"{fmt(s['epoch_s'], '8.1f')} {fmt(s['peak_mib'], '9d')}  {s.get('note', '')}")
    if vectors:
        ok = (min(vectors["image_cos_min"], vectors["text_cos_min"]) >= COSINE_OK
              and vectors["top10_overlap"] >= OVERLAP_OK)
        lines += ["", f"CPU vs GPU vectors of {vectors['n']} products (lite):",
                  f"  pictures: cosine min {vectors['image_cos_min']:.4f}, mean {vectors['image_cos_mean']:.4f}",
                  f"  titles:   cosine min {vectors['text_cos_min']:.4f}, mean {vectors['text_cos_mean']:.4f}",
                  f"  each title's top 10 pictures: {vectors['top10_overlap']:.0%} the same on both devices",
                  f"  verdict: {'OK' if ok else 'CHECK'} (wants cosine >= {COSINE_OK} and top-10 overlap >= "
                  f"{OVERLAP_OK:.0%})"]
    lines += ["", f"total {total_s:.0f} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    usable, info = cuda_status(args.device)
    if not usable:
        print(f"mmtui GPU check: no CUDA here ({info}); nothing to check.")
        return 0
    started = time.perf_counter()
    work = args.keep or Path(tempfile.mkdtemp(prefix="mmtui-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MMTUI_OPENCLIP_CONFIGS", str(TINY_CONFIGS))
    log_path = (args.keep or Path(tempfile.gettempdir())) / "mmtui-gpu-check.log"
    steps = []
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            lite, tiny = work / "lite", work / "openclip-tiny"
            steps.append(build_step("build-index sample_catalog (lite)", lite, args.device, log))
            steps.append(train_step("train finetune lite, 1 epoch, bf16", lite, args.device, log,
                                    "finetune", "--epochs", "1"))
            steps.append(build_step("build-index (open_clip tiny)", tiny, args.device, log,
                                    "--model", "openclip:mmtui-tiny"))
            steps.append(train_step("train finetune open_clip tiny, AMP", tiny, args.device, log,
                                    "finetune", "--epochs", "1"))
            steps.append(train_step("train adapter (lite)", lite, args.device, log, "adapter"))
            vectors = compare_devices(args.device, args.products)
        page = render(info, steps, vectors, time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - a failed step is the finding: report it with the log
        page = render(info, steps, None, time.perf_counter() - started)
        print(page + f"\n\nFAILED: {type(exc).__name__}: {exc}\n(the commands' output: {log_path})")
        return 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(page)
    print(f"(the commands' output: {log_path})")
    if args.json:
        print(json.dumps({"device": info, "steps": steps, "vectors": vectors}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
