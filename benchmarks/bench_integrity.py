"""What the integrity checks of index generations cost when a search service opens (mmtui.index.generations).

A synthetic generation like a 100k-product catalog's with the lite model: image, text and fused indexes of
100k unit vectors of dim 256 with hnsw graphs (M=32; ef_construction 40 only to build it faster: the file
sizes and the load do not depend on it), and a lexical.npz stand-in of 20 MB. Measured: loading the three
indexes with the open-time checks (every size; CRC-32 of the small files and of the graphs) and without any,
and the full check of every file that build-index and `mmtui check` do. Run:

    python -m benchmarks.bench_integrity [--n 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_generation(root: Path, n: int, dim: int = 256) -> Path:
    from mmtui.index.ann import VectorIndex
    from mmtui.index.generations import NewGeneration

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex.build("image", "space", np.arange(1, n + 1), vectors, ef_construction=40)
    ann = root / "ann"
    with NewGeneration(ann, None) as gen:
        index.save(gen.dir)
        for name in ("text", "fused"):
            for f in VectorIndex.files("image", True):
                shutil.copy(gen.dir / f, gen.dir / f.replace("image", name))
        (gen.dir / "lexical.npz").write_bytes(rng.bytes(20 << 20))
        gen.commit()
    return ann


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import mmtui.index.generations as generations
    from mmtui.config import Settings
    from mmtui.query.service import _load_indexes

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ann = make_generation(Path(tmp), args.n)
        print(f"made a {args.n:,}-vector generation in {time.perf_counter() - started:.1f} s")
        gen = generations.current(ann)
        total = sum(r["size"] for r in gen.files.values())
        print(f"{len(gen.files)} files, {total / 1e6:.0f} MB")
        settings = Settings(data_dir=Path(tmp))
        real_check = generations.Generation.check
        timings: dict[str, list[float]] = {"open, checked": [], "open, unchecked": [], "open-time checks alone": [],
                                           "full check (build-index, mmtui check)": []}
        for _ in range(args.repeat):
            for label, check in (("open, checked", real_check), ("open, unchecked", lambda self, *a, **k: {})):
                generations.Generation.check = check
                t = time.perf_counter()
                loaded = _load_indexes(settings, "space")
                timings[label].append(time.perf_counter() - t)
                assert len(loaded.indexes) == 3 and not loaded.damaged
            generations.Generation.check = real_check
            t = time.perf_counter()
            assert not generations.current(ann).check()
            timings["open-time checks alone"].append(time.perf_counter() - t)
            t = time.perf_counter()
            assert not generations.current(ann).check(full=True)
            timings["full check (build-index, mmtui check)"].append(time.perf_counter() - t)
        for label, values in timings.items():
            print(f"{label:40s} median {statistics.median(values) * 1000:7.1f} ms  (min {min(values) * 1000:.1f})")


if __name__ == "__main__":
    main()
