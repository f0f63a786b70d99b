"""`mmtui train understanding`: learn how much the understood kind, person, colour and brand weigh in the ranking.

Queries: the catalog's own (kind, person, colour) groups phrased with mmtui.catalog.phrasings' TRAIN phrasings (never the
held-out ones the evaluation uses), and product titles (each finds its own product: the ranking must not lose it).
A grid over the weights of mmtui.query.understanding.rank is scored on the train split's queries (mean nDCG@10 of the two sets);
the best few are compared on the validation split's, and the best there is kept in meta "understanding". Only
combinations where the kind weighs at least twice the colour and the person at least as much as the colour are
tried: a product of the right kind for the right person comes before one that only has the colour; and only those
that cost title queries at most TITLE_SLACK nDCG@10 against the hybrid ranking alone, on train and on validation
(no such combination: the understanding weighs nothing, and queries rank as hybrid search ranks them).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

GRID = {"kind": (0.1, 0.25, 0.5, 1.0, 2.0), "person": (0.1, 0.25, 0.5, 1.0), "colour": (0.0, 0.05, 0.1, 0.25, 0.5),
        "brand": (0.0, 0.2), "list": (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)}
# the kind list's light weights: on a catalog where every title names its kind in other words (market: "Analog
# Watch - For Women" under "Wrist Watches"), a list weighing 0.5 already moved titles more than TITLE_SLACK
SHORTLIST = 8  # the best combinations on train, among those that keep validation's titles, that it chooses from
TITLE_SLACK = 0.01  # title queries may lose at most this much nDCG@10 to the understanding (on train and on val)
OFF = {"kind": 0.0, "person": 0.0, "colour": 0.0, "brand": 0.0, "list": 0.0}  # the hybrid ranking alone
META_KEY = "understanding"


@dataclass
class UnderstandingFit:
    weights: dict[str, float]
    train: dict[str, float]  # set -> mean nDCG@10 (queries whose kind was understood)
    val: dict[str, float]
    val_default: dict[str, float]  # the default weights on validation
    n_queries: dict[str, int]
    phrasings: str = "mmtui.catalog.phrasings TRAIN_TEMPLATES / TRAIN_PERSON"
    learned_at: str = ""
    notes: list[str] = field(default_factory=list)
    source: str = "generated"  # "generated" (the catalog's own phrased queries) or "judgements"
    val_before: dict[str, float] = field(default_factory=dict)  # the weights in use before, on validation
    promoted: bool = True

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class _Parts:
    hybrid: np.ndarray  # fused RRF score over the hybrid signals, per candidate
    kind_list: np.ndarray  # 1 / (RRF_K + rank) in the kind list, 0 if absent
    fits: dict[str, np.ndarray]
    gains: np.ndarray  # 2^grade - 1 per candidate
    ideal: float  # ideal DCG@10
    relevant: np.ndarray  # grade >= 1 per candidate
    hybrid_total: float  # sum of the hybrid weights
    pinned: np.ndarray | None = None  # the candidate a title-spelling query keeps first (mmtui.query.understanding.state.pinned_rowid)


def _parts(service: Any, text: str, relevant: dict[str, int]) -> _Parts | None:
    from mmtui.query.understanding.rank import match
    from mmtui.query.hybrid import RRF_K, fuse_ranked
    from mmtui.query.service import CANDIDATES, VECTOR_INDEXES
    from mmtui.query.understanding.state import kind_list, pinned_rowid

    understood = service.understand(text)
    if understood is None or not understood.parts.get("kind"):
        return None
    weights = service.hybrid_weights()
    ranked: dict = {}
    if "lexical" in weights:
        ranked["lexical"] = service.lexical_hits(understood.text, CANDIDATES)
    vector = service.query_vector(understood.text)
    for name in VECTOR_INDEXES:
        if name in weights and name in service.indexes:
            ranked[name] = service.vector_hits(name, vector, CANDIDATES)
    extra = kind_list(service.understanding, understood, None, service.kind_search(understood.text))
    everything = len({r for hits in ranked.values() for r, _ in hits})
    hybrid = {r: s for r, s, *_ in fuse_ranked(ranked, everything, weights)}
    listed = {r: 1.0 / (RRF_K + rank) for rank, (r, _) in enumerate(extra, start=1)}
    rowids = np.array(sorted(set(hybrid) | set(listed)), np.int64)
    if not len(rowids):
        return None
    ids = {row["rowid"]: row["id"] for row in service.store.rows(rowids.tolist())}
    grades = np.array([relevant.get(ids.get(int(r), ""), 0) for r in rowids], np.float64)
    discounts = 1.0 / np.log2(np.arange(2, 12))
    ideal_gains = np.sort([2.0 ** g - 1 for g in relevant.values() if g >= 1])[::-1][:10]
    pinned = pinned_rowid(service.store, understood.text, ranked)
    return _Parts(np.array([hybrid.get(int(r), 0.0) for r in rowids]), np.array([listed.get(int(r), 0.0) for r in rowids]),
                  match(service.understanding.state().facets, understood, rowids), 2.0 ** grades - 1, float(ideal_gains @ discounts[:len(ideal_gains)]),
                  grades >= 1, sum(v for v in weights.values() if v > 0), rowids == pinned if pinned is not None else None)


def _ndcg(parts: _Parts, w: dict[str, float]) -> float:
    from mmtui.query.hybrid import RRF_K

    base = (parts.hybrid + w["list"] * parts.kind_list) / ((parts.hybrid_total + w["list"]) / (RRF_K + 1))
    total = base + sum(w.get(f, 0.0) * fit for f, fit in parts.fits.items())
    if parts.pinned is not None:
        total = np.where(parts.pinned, np.inf, total)
    top = np.argsort(-total, kind="stable")[:10]
    dcg = float(parts.gains[top] @ (1.0 / np.log2(np.arange(2, 2 + len(top)))))
    return dcg / parts.ideal if parts.ideal > 0 else 0.0


def _query_sets(store: Any, split: str, limit: int, seed: int) -> dict[str, list[tuple[str, dict[str, int]]]]:
    from mmtui.catalog.phrasings import phrased_queries

    shopper = [(q.text, q.relevant) for q in phrased_queries(store, split, "train", limit=limit, seed=seed)]
    rows = store.db.execute("SELECT id, title FROM products WHERE split = ? AND trim(coalesce(title, '')) != '' "
                            "ORDER BY rowid", [split]).fetchall()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(rows), size=min(limit, len(rows)), replace=False) if rows else []
    titles = [(str(rows[i][1]), {str(rows[i][0]): 1}) for i in sorted(pick)]
    return {"shopper": shopper, "title": titles}


def _collect(service: Any, sets: dict, progress: Any = None) -> dict[str, list[_Parts]]:
    out: dict[str, list[_Parts]] = {}
    for name, queries in sets.items():
        out[name] = [p for p in (_parts(service, text, rel) for text, rel in queries) if p is not None]
        if progress is not None:
            progress(f"{name}: {len(out[name])} of {len(queries)} queries name a kind")
    return out


def _score(collected: dict[str, list[_Parts]], w: dict[str, float]) -> dict[str, float]:
    return {name: float(np.mean([_ndcg(p, w) for p in parts])) if parts else 0.0 for name, parts in collected.items()}


def learn_understanding(service: Any, *, limit: int = 300, seed: int = 0, progress: Any = None,
                        judged: Any = None, force: bool = False) -> UnderstandingFit:
    """Grid on the train split's queries, choice among the SHORTLIST best on the validation split's; saved.

    `judged`: [(text, grades)] of the user's judged queries, used instead of the generated shopper queries: split
    by query (mmtui.train.weights.hybrid.split_by_query), fitted on one side, chosen and reported on the held-out
    side, and saved only if better there than the weights in use (unless `force`)."""
    from mmtui.query.understanding.rank import DEFAULT_WEIGHTS

    store = service.store
    parse = learn_parse(service, seed=seed, progress=progress) if judged is None else _current_parse(store)
    train_sets, val_sets = _query_sets(store, "train", limit, seed), _query_sets(store, "val", limit, seed)
    if judged is not None:
        train_sets["shopper"], val_sets["shopper"] = _judged_sets(judged, seed)
    used = _write_used(service, {"train": train_sets, "val": val_sets})
    train = _collect(service, train_sets, progress)
    val = _collect(service, val_sets, progress)
    w, s, v = choose_weights(train, val)
    fit = UnderstandingFit(weights=w, train={k: round(x, 4) for k, x in s.items()},
                           val={k: round(x, 4) for k, x in v.items()},
                           val_default={k: round(x, 4) for k, x in _score(val, DEFAULT_WEIGHTS).items()},
                           n_queries={f"train/{k}": len(p) for k, p in train.items()} |
                                     {f"val/{k}": len(p) for k, p in val.items()},
                           learned_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                           notes=[f"queries used: {used}"] if used else [])
    if judged is not None:
        current = _current_weights(store, DEFAULT_WEIGHTS)
        fit.source, fit.val_before = "judgements", {k: round(x, 4) for k, x in _score(val, current).items()}
        fit.promoted = force or fit.val.get("shopper", 0.0) > fit.val_before.get("shopper", 0.0) + 1e-9
        fit.notes.append(f"judged queries that name a kind: {len(train.get('shopper', []))} to fit, "
                         f"{len(val.get('shopper', []))} held out")
        if not fit.promoted:
            fit.notes.append("not better than the weights in use on the held-out judged queries: they stay")
            return fit
    if parse.get("parse"):
        fit.notes.append(f"retrieved-kinds weight learned on queries that do not spell their kind: {parse}")
    store.set_meta(META_KEY, json.dumps({"params": {"weights": w, "parse": parse.get("parse") or {}},
                                         "fit": fit.to_json()}))
    return fit


def choose_weights(train: dict[str, list[_Parts]], val: dict[str, list[_Parts]]
                   ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(weights, train scores, val scores): the best GRID combination on train's shopper queries among those that
    keep title queries within TITLE_SLACK of the hybrid ranking alone on train, chosen among the SHORTLIST best by
    validation's (which must keep its titles too); OFF when none does."""
    keys = list(GRID)
    train_off, val_off = _score(train, OFF), _score(val, OFF)
    scored = []
    for combo in itertools.product(*(GRID[k] for k in keys)):
        w = dict(zip(keys, combo))
        if w["kind"] < 2 * w["colour"] or w["person"] < w["colour"]:
            continue  # the kind and the person come first: a product with only the colour never outranks them
        s = _score(train, w)
        if s.get("title", 0.0) < train_off.get("title", 0.0) - TITLE_SLACK:
            continue  # a title must still find its product: catalogs of fine-grained kinds (IKEA) need a light touch
        scored.append((s.get("shopper", 0.0), w, s))
    scored.sort(key=lambda item: -item[0])
    best_val, best = -1.0, (OFF, train_off, val_off)  # nothing qualifies: the hybrid ranking alone
    kept = 0
    for _, w, s in scored:  # the SHORTLIST best on train that also keep validation's titles
        v = _score(val, w)
        if v.get("title", 0.0) < val_off.get("title", 0.0) - TITLE_SLACK:
            continue
        kept += 1
        if v.get("shopper", 0.0) > best_val + 1e-9:
            best_val, best = v.get("shopper", 0.0), (w, s, v)
        if kept >= SHORTLIST:
            break
    return best


NEAR_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)  # the weight of the nearest products' kinds next to the words' own


def unspelled_queries(facets: Any, split_rowids: Any, limit: int, seed: int) -> list[tuple[str, int, int]]:
    """(text, kind code, rowid): the catalog's own titles with their kind's words taken out ("Scullers Women Knit
    White Sweaters" -> "scullers women knit white"): queries that say what they want without its name, as a
    shopper's synonym does. Only titles that said the kind, and keep a content word without it."""
    from mmtui.catalog.facets import singular, words
    from mmtui.query.understanding.parse import STOP_WORDS

    codes, values = facets.codes["kind"], facets.values["kind"]
    kind_words = [{singular(w) for w in words(v)} | set(words(v)) for v in values]
    all_kind_words = set().union(*kind_words) if kind_words else set()
    out = []
    for rowid in split_rowids:
        code = int(codes[rowid]) if 0 <= rowid < len(codes) else -1
        title = facets.titles.get(int(rowid))
        if code < 0 or not title:
            continue
        said = words(title)
        if not any(w in kind_words[code] or singular(w) in kind_words[code] for w in said):
            continue
        rest = [w for w in said if w not in all_kind_words and singular(w) not in all_kind_words]
        if any(w not in STOP_WORDS and w.isalpha() and len(w) > 2 for w in rest):
            out.append((" ".join(rest), code, int(rowid)))
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(out), size=min(limit, len(out)), replace=False)) if out else []
    return [out[i] for i in pick]


def kind_outcome(understander: Any, queries: list[tuple[str, int, int]], near: Any, facets: Any,
                 among: Any = None) -> float:
    """Share of queries whose understood kind is right, less the share whose kind is wrong (a wrong kind costs
    more than none: it reorders the results away from what was asked). `near`, `among`: the understander's
    nearest products (overall, among some), which never give a query its own title's product."""
    right = wrong = 0
    for text, code, rowid in queries:
        understander.near = (lambda t, r=rowid: [x for x in (near(t) or []) if x != r])  # not the title's own
        if among is not None:
            understander.near_among = (lambda t, pool, r=rowid: [x for x in (among(t, pool) or []) if x != r])
        best = understander.parse(text).best("kind")
        if best is None:
            continue
        right += best == facets.values["kind"][code]
        wrong += best != facets.values["kind"][code]
    return (right - wrong) / max(1, len(queries))


def choose_near(score: Any, grid: tuple = NEAR_GRID, keep: float = 1.0) -> tuple[float, dict[float, float]]:
    """(the weight that scores best, every weight's score); ties go to the lighter weight, and when every weight
    scores the same (the queries cannot tell them apart) the weight in use, `keep`, stays."""
    scores = {w: score(w) for w in grid}
    if max(scores.values()) - min(scores.values()) < 1e-9:
        return keep, scores
    best = max(scores.items(), key=lambda item: (round(item[1], 6), -item[0]))[0]
    return best, scores


def learn_parse(service: Any, limit: int = 200, seed: int = 0, progress: Any = None) -> dict:
    """Learn the weight of the retrieved-kinds evidence (parse param "near") on the train split's unspelled
    queries (unspelled_queries), checked on validation's; saved in meta "understanding" params "parse" (the
    understanding is made again with it). {} when the catalog gives no such queries."""
    state = service.understanding.state()
    understander, facets = state.understander, state.facets
    if understander is None or "kind" not in facets.codes or service.understanding.near is None:
        return {}
    splits = dict(service.store.db.execute("SELECT rowid, split FROM products").fetchall())
    sets = {name: unspelled_queries(facets, [r for r, sp in splits.items() if sp == name], limit, seed)
            for name in ("train", "val")}
    if len(sets["train"]) < 20:
        return {}
    service.encoder  # noqa: B018 - the nearest products need the model: loaded now, not skipped as "still loading"
    cache: dict[str, Any] = {}
    near = service.understanding.near

    def nearest(text: str) -> Any:
        if text not in cache:
            cache[text] = near(text)
        return cache[text]

    lexicon, saved_near, saved = understander.lexicon, understander.near, dict(understander.lexicon.params)
    saved_among = understander.near_among

    def score(split: str) -> Any:
        def at(weight: float) -> float:
            lexicon.params["near"] = weight
            return kind_outcome(understander, sets[split], nearest, facets, saved_among)
        return at

    try:
        weight, train = choose_near(score("train"), keep=saved["near"])
        val = {w: score("val")(w) for w in (weight, saved["near"])}
    finally:
        lexicon.params.clear()
        lexicon.params.update(saved)
        understander.near, understander.near_among = saved_near, saved_among
    if progress is not None:
        progress(f"retrieved kinds: weight {weight} (train right - wrong {train[weight]:.3f}, val {val[weight]:.3f})")
    info = json.loads(service.store.get_meta(META_KEY) or "{}")
    params = {**(info.get("params") or {}), "parse": {**((info.get("params") or {}).get("parse") or {}),
                                                      "near": weight}}
    service.store.set_meta(META_KEY, json.dumps({**info, "params": params}))
    service.understanding.reset()
    return {"parse": params["parse"], "train": {str(k): round(v, 4) for k, v in train.items()},
            "val": {str(k): round(v, 4) for k, v in val.items()}, "n": {k: len(v) for k, v in sets.items()}}


def _current_parse(store: Any) -> dict:
    try:
        return {"parse": (json.loads(store.get_meta(META_KEY) or "{}").get("params") or {}).get("parse") or {}}
    except (ValueError, AttributeError):
        return {}


MIN_JUDGED = 3


def _judged_sets(judged: Any, seed: int) -> tuple[list, list]:
    from mmtui.errors import MmtuiError
    from mmtui.train.weights.hybrid import split_by_query

    usable = [(t, dict(g)) for t, g in judged if any(v >= 1 for v in g.values())]
    train_pos, val_pos = split_by_query([t for t, _ in usable], seed=seed)
    if len(train_pos) < MIN_JUDGED or len(val_pos) < MIN_JUDGED:
        raise MmtuiError(f"{len(usable)} judged text queries split into {len(train_pos)} to fit and {len(val_pos)} "
                         f"to hold out: at least {MIN_JUDGED} each are needed",
                         "judge more queries in the TUI (2 on a relevant result); about 20 are enough to start")
    return [usable[i] for i in train_pos], [usable[i] for i in val_pos]


def _current_weights(store: Any, default: dict) -> dict[str, float]:
    try:
        weights = json.loads(store.get_meta(META_KEY) or "{}").get("params", {}).get("weights")
    except (ValueError, AttributeError):
        weights = None
    return {**OFF, **(weights or default)}


MIN_VAL_PRODUCTS = 20  # as for the hybrid weights: fewer validation products could not choose among the weights


def learn_at_build(settings: Any, store: Any, encoder: Any, *, progress: Any = None) -> dict:
    """build-index's step after the hybrid weights: learn the understanding weights (learn_understanding) when the
    search space or the products changed since they were last learned; else nothing. Catalogs with no kind of
    product to understand, or too few validation products, keep the defaults."""
    import hashlib

    from mmtui.errors import MmtuiError
    from mmtui.query.service import SearchService

    rows = store.db.execute("SELECT rowid, title_sha, split FROM products ORDER BY rowid").fetchall()
    n_val = sum(1 for r in rows if r[2] == "val")
    if n_val < MIN_VAL_PRODUCTS:
        return {"status": "skipped", "message": f"{n_val} validation products: the understanding keeps its defaults"}
    digest = hashlib.sha1(json.dumps([store.get_meta("index_space"), rows]).encode()).hexdigest()[:16]
    info = json.loads(store.get_meta(META_KEY) or "{}")
    if info.get("build_digest") == digest:
        return {"status": "unchanged", "weights": (info.get("params") or {}).get("weights")}
    if (info.get("fit") or {}).get("source") == "judgements":  # learned from the user's judgements: kept
        return {"status": "kept", "weights": (info.get("params") or {}).get("weights")}
    service = SearchService.open(settings, encoder=encoder)
    try:
        if service.understand("x") is None:
            return {"status": "skipped", "message": "the catalog has no facets to understand queries by"}
        fit = learn_understanding(service)
    except MmtuiError as exc:
        return {"status": "skipped", "message": exc.message}
    finally:
        service.close()
    saved = json.loads(store.get_meta(META_KEY) or "{}")
    store.set_meta(META_KEY, json.dumps({**saved, "build_digest": digest}))
    return {"status": "learned", "weights": fit.weights, "val": fit.val, "val_default": fit.val_default}


def _write_used(service: Any, sets: dict) -> str:
    """Every query the weights were learned and chosen on, one JSON line each, in DATA_DIR/reports (so a
    measurement can show it never used them); "" when there is nowhere to write."""
    settings = getattr(service, "settings", None)
    if settings is None:
        return ""
    path = settings.reports_dir / "understanding-queries.jsonl"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for split, named in sets.items():
                for name, queries in named.items():
                    for text, relevant in queries:
                        f.write(json.dumps({"split": split, "set": name, "query": text, "relevant": relevant}) + "\n")
    except OSError:
        return ""
    return str(path)
