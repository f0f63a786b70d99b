"""The design comparisons behind mmtui.query.regions, on development photos only (see benchmarks/regions.py).

Every window of a wider candidate set (the default sizes plus 0.25 of the shorter side) is encoded once per photo
(pooled vectors) and searched (top 100); each variant then chooses, searches and merges from those lists, so the
variants differ only in the choice they name. Pooled vs crop vectors re-encodes the 8 chosen regions as crops.
"""

from __future__ import annotations

import itertools
import random

import numpy as np

from benchmarks.bench_util import log

WIDER = ((0.25, (1.0,)), (0.35, (1.0, 1.5, 1 / 1.5)), (0.5, (1.0, 1.5, 1 / 1.5)), (0.7, (1.0,)))
DEPTH = 100


def _photo(service, query, ids) -> dict:
    from mmtui.catalog.regions import candidate_boxes
    from mmtui.encoders.regions import region_vectors
    from mmtui.query.regions import REGION_DECODE, open_picture

    picture = open_picture(query.image, service.encoder.image_size * REGION_DECODE)
    boxes = candidate_boxes(*picture.image.size, scales=WIDER)
    vectors = service.projector.image(region_vectors(service.encoder, picture.image, boxes))
    hits = [[(ids[r], s) for r, s in service.vector_hits("image", v, DEPTH)] for v in vectors]
    whole = [h.id for h in service.search_image(query.image, k=DEPTH).hits]
    return {"picture": picture, "boxes": boxes, "hits": hits, "whole": whole, "relevant": query.relevant}


def _side(box, picture) -> float:
    return (box.w * box.h) ** 0.5 / min(picture.image.size)


def _choose(photo, keep_box, scorer, limit, rng) -> list[int]:
    from mmtui.catalog.regions import non_max_suppression

    idx = [i for i, b in enumerate(photo["boxes"]) if keep_box(b, photo["picture"])]
    scores = [photo["hits"][i][0][1] if scorer == "closest image" else rng.random() for i in idx]
    return [idx[j] for j in non_max_suppression([photo["boxes"][i] for i in idx], scores, overlap=0.3, limit=limit)]


def _merge(lists, how) -> list[str]:
    if how == "round robin":
        seen, out = set(), []
        for tier in itertools.zip_longest(*lists):
            for item in tier:
                if item is not None and item[0] not in seen:
                    seen.add(item[0])
                    out.append(item[0])
        return out[:DEPTH]
    best: dict[str, float] = {}
    for hits in lists:
        for pid, s in hits:
            best[pid] = max(best.get(pid, -1.0), s)
    return sorted(best, key=lambda p: -best[p])[:DEPTH]


def _metrics(rankings, relevances) -> dict:
    from mmtui.metrics import recall_at_k, score_rankings

    m = score_rankings(rankings, relevances)
    m["recall@20"] = float(np.mean([recall_at_k(r, rel, 20) for r, rel in zip(rankings, relevances)]))
    return m


VARIANTS = {  # name: (which windows, how they are scored, how many kept, how lists merge)
    "default: 0.35/0.5/0.7, closest image, 8, round robin": (lambda b, p: _side(b, p) > 0.3, "closest image", 8,
                                                             "round robin"),
    "+ windows of 0.25": (lambda b, p: True, "closest image", 8, "round robin"),
    "squares only": (lambda b, p: _side(b, p) > 0.3 and abs(b.w - b.h) <= 2, "closest image", 8, "round robin"),
    "random scores": (lambda b, p: _side(b, p) > 0.3, "random", 8, "round robin"),
    "4 regions": (lambda b, p: _side(b, p) > 0.3, "closest image", 4, "round robin"),
    "12 regions": (lambda b, p: _side(b, p) > 0.3, "closest image", 12, "round robin"),
    "merged by best score": (lambda b, p: _side(b, p) > 0.3, "closest image", 8, "best score"),
}


def ablate(data_dir, queries, label: str) -> None:
    from mmtui.config import Settings
    from mmtui.query.service import SearchService

    service = SearchService.open(Settings.load(data_dir=data_dir))
    service.load_model()
    ids = dict(service.store.db.execute("SELECT rowid, id FROM products").fetchall())
    photos = []
    for n, query in enumerate(queries):
        photos.append(_photo(service, query, ids))
        if n % 20 == 0:
            log(f"{label}: {n}/{len(queries)}")
    relevances = [p["relevant"] for p in photos]
    rows = {"whole photo": _metrics([p["whole"] for p in photos], relevances)}
    for name, (keep_box, scorer, limit, how) in VARIANTS.items():
        rng = random.Random(0)
        chosen = [_choose(p, keep_box, scorer, limit, rng) for p in photos]
        rows[name] = _metrics([_merge([p["hits"][i] for i in c], how) for p, c in zip(photos, chosen)], relevances)
    rows["crop vectors for the 8 default regions"] = _metrics(_crop_rankings(service, photos, ids), relevances)
    keys = ("recall@1", "recall@10", "recall@20", "p@10", "ndcg@10", "mrr")
    print(f"\n{label} ({len(photos)} development photos)\n| variant | " + " | ".join(keys) + " |\n|---|"
          + "---:|" * len(keys))
    for name, m in rows.items():
        print(f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in keys) + " |")
    service.close()


def _crop_rankings(service, photos, ids) -> list[list[str]]:
    from mmtui.catalog.regions import crop

    keep_box, scorer, limit, how = VARIANTS["default: 0.35/0.5/0.7, closest image, 8, round robin"]
    out = []
    for p in photos:
        chosen = _choose(p, keep_box, scorer, limit, random.Random(0))
        crops = [crop(p["picture"].image, p["boxes"][i]) for i in chosen]
        vectors = service.projector.image(service.encoder.encode_images(crops)) if crops else []
        out.append(_merge([[(ids[r], s) for r, s in service.vector_hits("image", v, DEPTH)] for v in vectors], how))
    return out


def run_ablations(ikea_index, room_dev, grocery_index, grocery_dev) -> None:
    ablate(ikea_index, room_dev, "ikea rooms, lines 2, 4, 6, ...")
    ablate(grocery_index, grocery_dev, "grocery photos, development draw")
