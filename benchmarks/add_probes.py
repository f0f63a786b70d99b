"""Give an existing data dir the ANN self-check's query-like probes (what build-index's step 4a does: probe texts
from the catalog, encoded with the model the store's vectors were made with), then with --reindex run reindex:
every graph whose vectors are unchanged is carried over and only re-checked (speed.md, "One million products end
to end"). A benchmark store (bench_scale --child store) has no build that would make them.

    python -m benchmarks.add_probes DATA_DIR [--reindex]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(2)
    from mmtui.catalog.probes import probe_texts
    from mmtui.config import Settings
    from mmtui.index.generations import current
    from mmtui.index.probes import save_probes
    from mmtui.index.writer import reindex
    from mmtui.store.db import Store

    from .bench_util import load_model

    settings = Settings(data_dir=Path(argv[0]))
    store = Store.open(settings.db_path)
    try:
        base = store.get_meta("base_fingerprint")
        t = time.perf_counter()
        texts = probe_texts(store)
        print(f"{len(texts)} probe texts in {time.perf_counter() - t:.1f} s, e.g. {texts[:8]}", flush=True)
        encoder = load_model("lite")
        if encoder.fingerprint != base:
            print(f"the store's vectors are of model {base}, lite here is {encoder.fingerprint}", file=sys.stderr)
            return 1
        probes = save_probes(store, base, texts, encoder.encode_texts(texts), store.product_count())
        print(f"probes {probes.digest} saved", flush=True)
        if "--reindex" in argv:
            t = time.perf_counter()
            results = reindex(settings, store=store, progress=lambda e: e.message and print(
                time.strftime("%H:%M:%S"), e.message, flush=True))
            print(f"reindex {time.perf_counter() - t:.1f} s {json.dumps(results)}", flush=True)
            gen = current(settings.ann_dir)
            for name in ("image", "text", "fused"):
                m = json.loads((gen.dir / f"{name}.manifest.json").read_text())
                print(name, "ef", m["ef"], "recall@10", m["recall_at_10"], json.dumps(m["extra"].get("check")))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
