"""Near-duplicate products in a catalog: the same picture, or the same title up to the catalog's colour and size words.

- picture: every pair of products whose image vectors' cosine is at least the threshold (an exact scan in blocks of
  the image index's vectors: all pairs, no graph recall to doubt), joined into groups (a product near two others
  puts all three in one group);
- title: products whose variant keys are equal (mmtui.query.arrange.variant_key: the title without the catalog's
  colour words and size words, and the kind), i.e. one product in several colours or sizes.
Returns data (DuplicateReport); the CLI renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmtui.errors import QueryError
from mmtui.progress import ProgressCallback, ProgressEvent

THRESHOLD = 0.97  # cosine of two image vectors above which the pictures are taken for the same one
BLOCK = 1024  # rows of the similarity matrix made at once (BLOCK x N floats)


@dataclass
class Group:
    """Products that are the same picture or the same title: ids, titles and colours in catalog order."""
    reason: str  # "picture" | "title"
    ids: list[str]
    titles: list[str]
    colours: list[str]
    similarity: float | None = None  # picture groups: the lowest cosine of the pairs that joined them
    key: str = ""  # title groups: the title without its colour and size words

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason, "ids": self.ids, "titles": self.titles, "colours": self.colours}
        if self.similarity is not None:
            out["similarity"] = round(self.similarity, 4)
        if self.key:
            out["key"] = self.key
        return out


@dataclass
class DuplicateReport:
    products: int
    threshold: float
    picture: list[Group] | None = None  # None: not looked for
    title: list[Group] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"products": self.products, "threshold": self.threshold}
        for name, groups in (("same_picture", self.picture), ("same_title", self.title)):
            if groups is not None:
                out[name] = {"groups": len(groups), "products": sum(len(g.ids) for g in groups),
                             "list": [g.to_json() for g in groups]}
        return out


def picture_pairs(labels: np.ndarray, vectors: np.ndarray, threshold: float,
                  progress: ProgressCallback | None = None) -> list[tuple[int, int, float]]:
    """Every pair (rowid a, rowid b, cosine) with a < b whose unit vectors' cosine is >= threshold."""
    v = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.maximum(norms, 1e-12)
    pairs: list[tuple[int, int, float]] = []
    n = len(v)
    for start in range(0, n, BLOCK):
        sims = v[start:start + BLOCK] @ v.T
        rows, cols = np.nonzero(sims >= threshold)
        for i, j in zip(rows.tolist(), cols.tolist()):
            if start + i < j:
                pairs.append((int(labels[start + i]), int(labels[j]), float(sims[i, j])))
        if progress is not None:
            progress(ProgressEvent("compare-pictures", min(start + BLOCK, n), n))
    return pairs


def _groups(pairs: list[tuple[int, int, float]]) -> list[tuple[list[int], float]]:
    """Connected groups of the pairs: [(rowids sorted, lowest cosine of a joining pair)], biggest first."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in pairs:
        parent[find(a)] = find(b)
    members: dict[int, list[int]] = {}
    low: dict[int, float] = {}
    for a, b, s in pairs:
        root = find(a)
        low[root] = min(low.get(root, 1.0), s)
    for x in list(parent):
        members.setdefault(find(x), []).append(x)
    out = [(sorted(m), low[root]) for root, m in members.items()]
    return sorted(out, key=lambda g: (-len(g[0]), g[0][0]))


def find_duplicates(service: Any, threshold: float = THRESHOLD, *, pictures: bool = True, titles: bool = True,
                    progress: ProgressCallback | None = None) -> DuplicateReport:
    """The catalog's near-duplicates (module doc) by the service's image index and its products' titles."""
    from mmtui.query.arrange import colour_words, variant_key

    facets = service.understanding.state().facets
    report = DuplicateReport(len(facets.titles), threshold)
    if pictures:
        index = service.indexes.get("image")
        if index is None:
            raise QueryError("this data dir has no image index",
                                    "run `mmtui build-index CATALOG`, or look for same titles only: --by title")
        pairs = picture_pairs(np.asarray(index.labels), np.asarray(index.vectors), threshold, progress)
        report.picture = [_group(service, "picture", rowids, similarity=low) for rowids, low in _groups(pairs)]
    if titles:
        colours = colour_words(facets.values.get("colour", []))
        kinds = facets.codes.get("kind")
        by_key: dict[str, list[int]] = {}
        for rowid, title in facets.titles.items():
            kind = facets.values["kind"][int(kinds[rowid])] if kinds is not None and kinds[rowid] >= 0 else ""
            key = variant_key(title, colours, kind)
            if key.split("|", 1)[1]:
                by_key.setdefault(key, []).append(rowid)
        same = sorted(((key, sorted(r)) for key, r in by_key.items() if len(r) > 1),
                      key=lambda kr: (-len(kr[1]), kr[1][0]))
        report.title = [_group(service, "title", rowids, key=key.split("|", 1)[1]) for key, rowids in same]
    return report


def _group(service: Any, reason: str, rowids: list[int], **extra: Any) -> Group:
    rows = service.store.rows(rowids)
    return Group(reason, [str(r["id"]) for r in rows], [str(r.get("title") or "") for r in rows],
                 [str(r.get("colour") or "") for r in rows], **extra)
