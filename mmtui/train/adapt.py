"""Adapting the model to the catalog, as part of build-index.

The shipped lite heads learned fashion; on other catalogs words find pictures at chance. The catalog's own
title-picture pairs fix that: the heads (two linear maps over frozen-tower features) are trained again on the
catalog's train split, warm-started from the shipped ones, each picture paired with its title and with its kind's
words (the article type, else the last step of the category: what shoppers type), and kept only if they beat the
shipped ones on the validation split. The features the heads read were cached by the build's own encode pass
(Store.put_features), so adapting runs no tower: it costs head training (seconds to minutes) and one matrix product
per product to re-project the cached features. The training and the measures are in mmtui.train.adapt_fit.

Every build also weighs the ImageNet bridge for the catalog (the heads' second route from pictures to words, through
the tower's ImageNet classes): the weight that scores best on the validation products (on every product when the
catalog is too small to hold some out) is chosen from adapt_fit.BRIDGE_WEIGHTS, with the softmax temperature over its
classes from adapt_fit.BRIDGE_TEMPERATURES, for the shipped heads (with --no-adapt too: two numbers, nothing
trained) and again for adapted ones. Shipped heads with another weight or temperature than the shipped ones are
saved under adapted/ like adapted heads.

When it runs again: when there is no adaptation yet, when the heads it started from changed, or when at least
READAPT_SHARE of the catalog's current training pairs (title + picture, by content) were not among those it
was trained on. Below that, new products are encoded with the adapted heads as they are.
Below MIN_TRAIN_PAIRS training pairs (or MIN_VAL_PAIRS validation pairs), the shipped heads are kept: too few
pairs to learn from or to tell whether learning helped.

For other models (open_clip), the same step trains the residual adapter on the cached vectors
(mmtui.train.adapter) and promotes it when it beats the base model on validation.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmtui.config import Settings
from mmtui.encoders.for_index import ADAPTATION_KEY, AdapterAdaptation, HeadsAdaptation, read_adaptation
from mmtui.progress import ProgressCallback, ProgressEvent, check_cancel, null_progress
from mmtui.store.db import Store
from mmtui.train.adapt_fit import category_queries, choose_bridge_weight, figures, judge, public
from mmtui.train.adapt_fit import fit as _fit

# A validation split under ~20 products cannot tell a real gain from noise, so the keep test needs this many
# pairs (measured on IKEA and Fashion samples: docs/figures.md, "Adapting to the catalog").
MIN_TRAIN_PAIRS = 100
MIN_VAL_PAIRS = 20
MIN_CHOICE_PAIRS = 10  # below this many products with a title and a picture, the bridge keeps its shipped weight
READAPT_SHARE = 0.10
ADAPTED_DIR = "adapted"
KINDS = ("image", "title", "text")


@dataclass
class Adaptation:
    """What the adapting step did, and the validation figures before (shipped heads) and after (adapted)."""
    status: str  # adapted | kept-shipped | unchanged | too-few-pairs | off | not-supported | adapter
    message: str
    model: str = ""  # the heads now in use: "shipped" or "adapted"
    n_train: int = 0
    n_val: int = 0
    before: dict = field(default_factory=dict)  # {"title->picture": {r1, r10, mrr}, "category->picture": {ndcg@10}}
    after: dict = field(default_factory=dict)
    chance_r10: float = 0.0  # R@10 of a random ranking of the validation pictures
    seconds: float = 0.0
    epochs: int = 0
    reason: str = ""  # why the adapted heads were kept or not, in plain words
    bridge: dict = field(default_factory=dict)  # {"shipped": w, "chosen": w, "adapted": w}: the ImageNet bridge
    measured_on: str = "validation"  # the figures' products: "validation", or "all" (too few to hold any out)
    weights: Path | None = None  # the lite heads now in use (None: not a lite model)

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("weights")
        return out


def adapt_to_catalog(settings: Settings, store: Store, encoder, *, enabled: bool = True,
                     progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                     device: str | None = None) -> Adaptation:
    """Adapt the heads of `encoder` (the index's model, possibly already adapted) to the catalog in `store`.

    Leaves the store's base_fingerprint at the vectors of the heads now in use and returns what happened."""
    progress = progress or null_progress
    started = time.perf_counter()
    features_fp = getattr(encoder, "feature_fingerprint", None)
    if features_fp is None:
        if not enabled:
            return Adaptation("off", "adapting is off (--no-adapt)")
        if str(store.get_meta("base_model") or "").startswith("openclip:"):
            return _adapt_open_clip(settings, store, progress, cancel)
        return Adaptation("not-supported", f"model {encoder.name} has no heads to adapt")
    job = _Job.gather(settings, store, encoder, features_fp)
    if not enabled:
        return _shipped(job, "off", "adapting is off (--no-adapt): the shipped model is in use")
    if job.n_train < MIN_TRAIN_PAIRS or job.n_val < MIN_VAL_PAIRS:
        return _shipped(job, "too-few-pairs", f"{job.n_train} training and {job.n_val} validation pairs of title "
                        f"and picture: too few to adapt the model to this catalog (it needs {MIN_TRAIN_PAIRS} and "
                        f"{MIN_VAL_PAIRS}); the shipped model is in use")
    job.current = _pair_keys(job.pairs["train"])
    return _reuse(job) or _train(job, progress, cancel, device or _device(settings), started)


@dataclass
class _Job:
    """What every step of adapting reads: the catalog's pairs, the shipped heads and the previous adaptation."""
    settings: Settings
    store: Store
    encoder: object
    features_fp: str
    spec: str  # the model spec ("lite", ...)
    shipped: Path  # its shipped heads
    base_sha: str  # their content
    previous: HeadsAdaptation | None
    pairs: dict[str, dict]  # per split, see _pairs
    current: np.ndarray | None = None  # the training pairs' keys (set once there are enough pairs)
    _kind_features: dict = field(default_factory=dict)  # kind words -> their MiniLM features, encoded once

    @classmethod
    def gather(cls, settings: Settings, store: Store, encoder, features_fp: str) -> _Job:
        from mmtui.encoders import lite_weights

        spec = store.get_meta("base_model") or "lite"
        previous = read_adaptation(store)
        shipped = lite_weights(spec)
        return cls(settings, store, encoder, features_fp, spec, shipped, _file_sha(shipped),
                   previous if isinstance(previous, HeadsAdaptation) else None, _pairs(store, features_fp))

    @property
    def n_train(self) -> int:
        return len(self.pairs["train"]["rowids"])

    @property
    def n_val(self) -> int:
        return len(self.pairs["val"]["rowids"])

    def held_out(self) -> tuple[dict, str]:
        """The products the shipped heads are measured (and their bridge weighed) on: the validation split, or every
        product when it is too small (nothing is trained then, so nothing else learns from them)."""
        if self.n_val >= MIN_VAL_PAIRS:
            return self.pairs["val"], "validation"
        return _concat([self.pairs[s] for s in ("train", "val", "test")]), "all"

    def queries(self, part: dict) -> tuple[list, np.ndarray | None]:
        """The category-word queries of `part` and their MiniLM features."""
        queries = category_queries(part)
        return queries, (self.kind_features([q for q, _ in queries]) if queries else None)

    def kind_features(self, words: list[str]) -> np.ndarray:
        todo = sorted({w for w in words if w not in self._kind_features})
        if todo:
            feats = self.encoder.encode_texts_with_features(todo)[1]
            self._kind_features.update(zip(todo, np.asarray(feats, np.float32)))
        return np.stack([self._kind_features[w] for w in words]).astype(np.float32)

    def use(self, weights: Path) -> None:
        _use_heads(self.settings, self.store, weights, self.features_fp)

    def rel(self, path: Path | None) -> str | None:
        return str(Path(path).relative_to(self.settings.data_dir)) if path is not None else None


@dataclass
class _Shipped:
    """The shipped heads as this catalog uses them: their bridge weighed for it (saved under adapted/ when that is
    not the shipped weight), and their figures on the held-out products."""
    heads: object
    path: Path  # the file in use: the shipped heads, or their tuned copy
    tuned: bool
    figures: dict  # with the per-query figures (see adapt_fit.figures); {} with under two products
    bridge: dict
    on: str  # "validation" | "all"
    chance: float


def _weigh_shipped(job: _Job, part: dict, queries: list, query_features: np.ndarray | None, on: str) -> _Shipped:
    from mmtui.encoders.lite import load_heads

    _, heads = load_heads(job.shipped)
    path, bridge = job.shipped, {}
    if heads.image.bridge and len(part["rowids"]) >= MIN_CHOICE_PAIRS:
        shipped_w, shipped_t = float(heads.image.bridge_weight.detach()), _temperature(heads)
        chosen = choose_bridge_weight(heads, part, queries, query_features)
        bridge = {"shipped": round(shipped_w, 3), "chosen": chosen}
        if _temperature(heads) != shipped_t:
            bridge |= {"shipped_temperature": shipped_t, "temperature": _temperature(heads)}
        if abs(chosen - shipped_w) > 1e-3 or _temperature(heads) != shipped_t:
            path = _save_heads(job, heads, "shipped", f"{job.base_sha}|{chosen}|{_temperature(heads)}")
            _, heads = load_heads(path)  # the weights as stored (fp16), as a loaded encoder projects with them
    n = len(part["rowids"])
    return _Shipped(heads, path, path != job.shipped, figures(heads, part, queries, query_features) if n >= 2 else {},
                    bridge, on, min(1.0, 10 / n) if n else 0.0)


def _shipped(job: _Job, status: str, message: str) -> Adaptation:
    """--no-adapt, or too few pairs: the shipped heads with their bridge weighed for the catalog. With --no-adapt the
    previous adaptation is kept (marked off) for a later build; with too few pairs it no longer applies."""
    part, on = job.held_out()
    queries, query_features = job.queries(part)
    shipped = _weigh_shipped(job, part, queries, query_features, on)
    job.use(shipped.path)
    previous = job.previous if status == "off" and job.previous and job.previous.for_model == job.spec else None
    if previous is not None:
        previous.disabled, previous.tuned = True, job.rel(shipped.path) if shipped.tuned else None
        _write_record(job, previous)
    elif shipped.tuned or job.previous is not None:
        _write_record(job, HeadsAdaptation(
            for_model=job.spec, weights=None, pairs="", model="shipped", base_sha=job.base_sha, n_train=job.n_train,
            n_val=job.n_val, before=public(shipped.figures), after={}, at=time.strftime("%Y-%m-%dT%H:%M:%S"),
            tuned=job.rel(shipped.path) if shipped.tuned else None))
    return Adaptation(status, message, "shipped", job.n_train, job.n_val, public(shipped.figures),
                      chance_r10=shipped.chance, bridge=shipped.bridge, measured_on=on, weights=shipped.path)


def _reuse(job: _Job) -> Adaptation | None:
    """The previous adaptation, put back in use, when it started from the same shipped heads and under
    READAPT_SHARE of today's training pairs are new to it; None when the heads must be trained again."""
    previous, data_dir = job.previous, job.settings.data_dir
    if previous is None or previous.base_sha != job.base_sha or previous.for_model != job.spec:
        return None
    previous.disabled = False
    weights = data_dir / previous.in_use() if previous.in_use() else job.shipped
    trained_on = _read_keys(data_dir / previous.pairs) if previous.pairs else None
    if trained_on is None or not weights.is_file():
        return None
    new = int((~np.isin(job.current, trained_on)).sum())
    if new >= READAPT_SHARE * len(job.current):
        return None
    job.use(weights)
    job.store.set_meta(ADAPTATION_KEY, previous.to_json())
    return Adaptation("unchanged", f"{new} of {len(job.current)} training pairs are new since the model was last "
                      f"adapted (it adapts again at {READAPT_SHARE:.0%}): nothing trained", previous.model,
                      job.n_train, job.n_val, previous.before, previous.after,
                      min(1.0, 10 / job.n_val) if job.n_val else 0.0, weights=weights)


def _train(job: _Job, progress: ProgressCallback, cancel: threading.Event | None, device: str,
           started: float) -> Adaptation:
    """Heads trained on the catalog's pairs, saved, and put in use when they beat the shipped ones on validation."""
    from mmtui.encoders.lite import load_heads

    progress(ProgressEvent("adapt", 0, None, f"adapting the model to this catalog ({job.n_train} training pairs)"))
    val = job.pairs["val"]
    queries, query_features = job.queries(val)
    shipped = _weigh_shipped(job, val, queries, query_features, "validation")
    heads, epochs = _fit(load_heads(job.shipped)[1], job.pairs, device=device, progress=progress, cancel=cancel,
                         queries=queries, query_features=query_features, kinds=_kinds(job))
    check_cancel(cancel)
    bridge = dict(shipped.bridge)
    if heads.image.bridge and bridge:
        bridge["adapted"] = choose_bridge_weight(heads, val, queries, query_features)
        bridge["adapted_temperature"] = _temperature(heads)
    path = _save_heads(job, heads, "lite", job.current.tobytes().hex() + job.base_sha)
    keys_path = path.with_suffix(".pairs.npy")
    np.save(keys_path, job.current)
    after = figures(load_heads(path)[1], val, queries, query_features)  # as stored (fp16), as loaded for search
    better, reason = judge(shipped.figures, after, shipped.chance)
    record = _record_choice(job, path, keys_path, shipped, better, public(after))
    verb = "adapted to this catalog" if better else "not adapted: the shipped model is kept"
    return Adaptation("adapted" if better else "kept-shipped", f"model {verb}", record.model, job.n_train, job.n_val,
                      record.before, record.after, shipped.chance, round(time.perf_counter() - started, 1), epochs,
                      reason, bridge, weights=path if better else shipped.path)


def _kinds(job: _Job) -> tuple[np.ndarray, np.ndarray] | None:
    """(kind id per training pair, -1 for none; MiniLM features per kind) of the training pairs, None without kinds."""
    names = sorted({k for k in job.pairs["train"]["kinds"] if k})
    if not names:
        return None
    index = {k: i for i, k in enumerate(names)}
    return np.array([index.get(k, -1) for k in job.pairs["train"]["kinds"]], np.int64), job.kind_features(names)


def _temperature(heads) -> float:
    return float((heads.image.bridge or {}).get("temperature", 1.0))


def _save_heads(job: _Job, heads, prefix: str, key: str) -> Path:
    """`heads` saved under adapted/, named by `key` (what they were made from)."""
    from mmtui.train.lit import save_checkpoint

    out_dir = job.settings.data_dir / ADAPTED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(_read(job.shipped)[0])
    if heads.image.bridge:  # the temperature chosen for this catalog
        config["image"]["bridge"] = dict(heads.image.bridge)
    name = f"{prefix}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    save_checkpoint(heads, {k: v for k, v in config.items() if k not in ("metrics", "trained_on")}, {}, out_dir,
                    name=name)
    return out_dir / f"{name}.safetensors"


def _record_choice(job: _Job, path: Path, keys_path: Path, shipped: _Shipped, better: bool,
                   after: dict) -> HeadsAdaptation:
    """Put the winning heads in use, record the adaptation, and delete the files nothing records any more."""
    job.use(path if better else shipped.path)
    record = HeadsAdaptation(for_model=job.spec, weights=job.rel(path) if better else None, pairs=job.rel(keys_path),
                             model="adapted" if better else "shipped", base_sha=job.base_sha, n_train=job.n_train,
                             n_val=job.n_val, before=public(shipped.figures), after=after,
                             at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                             tuned=job.rel(shipped.path) if shipped.tuned and not better else None)
    _write_record(job, record)
    return record


def _write_record(job: _Job, record: HeadsAdaptation) -> None:
    """Record the adaptation, then delete the files under adapted/ it does not name (older heads and pairs)."""
    job.store.set_meta(ADAPTATION_KEY, record.to_json())
    keep = set()
    for rel in (record.weights, record.pairs, record.tuned):
        if rel:
            keep |= {Path(rel).name, Path(rel).with_suffix(".json").name}
    folder = job.settings.data_dir / ADAPTED_DIR
    for stale in folder.glob("*") if folder.is_dir() else ():
        if stale.name not in keep and stale.suffix in (".safetensors", ".json", ".npy"):
            stale.unlink(missing_ok=True)


# -- the pairs ------------------------------------------------------------------------------------------------

def catalog_pairs(store: Store, features_fp: str) -> dict[str, dict]:
    """Per split ("train", "val", "test"): the products with a title and a picture, as adaptation reads them
    (rowids, cached picture and title features, pair keys, kinds); for benchmarks that measure heads offline."""
    return _pairs(store, features_fp)


def concat_pairs(parts: list[dict]) -> dict:
    """Several splits' pairs as one (e.g. every product of a catalog too small to hold any out)."""
    return _concat(parts)


def _pairs(store: Store, features_fp: str) -> dict[str, dict]:
    """Per split: rowids, picture features, title features, pair keys and kinds of products with both."""
    img_rows, img, img_shas = store.features(features_fp, "image")
    txt_rows, txt, txt_shas = store.features(features_fp, "title")
    current = {r: (split, isha, tsha, _kind_of(article, category)) for r, split, isha, tsha, article, category in
               store.db.execute("SELECT rowid, split, image_sha, title_sha, coalesce(article_type, ''), "
                                "coalesce(category, '') FROM products WHERE image_status = 'ok'")}
    at_txt = {int(r): i for i, r in enumerate(txt_rows.tolist())}
    out = {s: {"rowids": [], "img": [], "txt": [], "keys": [], "kinds": []} for s in ("train", "val", "test")}
    for i, r in enumerate(img_rows.tolist()):
        j = at_txt.get(r)
        row = current.get(r)
        if j is None or row is None or row[1] != img_shas[i] or row[2] != txt_shas[j]:
            continue  # stale features of changed content: that product is encoded again first
        part = out[row[0]] if row[0] in out else out["train"]
        part["rowids"].append(r)
        part["img"].append(i)
        part["txt"].append(j)
        part["keys"].append(f"{img_shas[i]}|{txt_shas[j]}")
        part["kinds"].append(row[3])
    for part in out.values():
        part["rowids"] = np.asarray(part["rowids"], np.int64)
        part["img"] = img[part["img"]] if len(part["img"]) else np.zeros((0, img.shape[1] if img.ndim == 2 else 0), np.float32)
        part["txt"] = txt[part["txt"]] if len(part["txt"]) else np.zeros((0, txt.shape[1] if txt.ndim == 2 else 0), np.float32)
    return out


def _kind_of(article_type: str, category: str) -> str:
    """A product's kind, as shoppers name it: the article type where the catalog has one, else the last step of the
    category ("Fruit > Apple" -> "apple"), lower-cased; "" for none."""
    return (str(article_type).strip() or str(category).split(">")[-1].strip()).lower()


def _concat(parts: list[dict]) -> dict:
    return {"rowids": np.concatenate([p["rowids"] for p in parts]), "img": np.concatenate([p["img"] for p in parts]),
            "txt": np.concatenate([p["txt"] for p in parts]), "keys": [k for p in parts for k in p["keys"]],
            "kinds": [k for p in parts for k in p["kinds"]]}


def _pair_keys(part: dict) -> np.ndarray:
    """Sorted 64-bit hashes of a split's (picture content, title content) pairs."""
    return np.sort(np.array([int.from_bytes(hashlib.sha1(k.encode()).digest()[:8], "big") for k in part["keys"]],
                            dtype=np.uint64))


def _read_keys(path: Path) -> np.ndarray | None:
    try:
        return np.load(path)
    except (OSError, ValueError):
        return None


def keep_adapted(before: dict, after: dict, chance: float, z: float = 2.0) -> bool:
    """Whether adapted heads replace the shipped ones (mmtui.train.adapt_fit.judge, without its reason)."""
    return judge(before, after, chance, z)[0]


# -- switching heads ------------------------------------------------------------------------------------

def _use_heads(settings: Settings, store: Store, weights: Path, features_fp: str) -> str:
    """Make the heads in `weights` the index's model: vectors for every product from the cached features (where
    missing) and base_fingerprint pointing at them. Returns their fingerprint."""
    from mmtui.encoders.lite import LiteEncoder

    fingerprint, _, features = LiteEncoder.fingerprint_for(f"lite:{weights}", _device(settings))
    if features != features_fp:
        raise RuntimeError("adapted heads read other features than the ones cached")  # a bug, not a user error
    for kind in KINDS:
        project_missing(store, weights, fingerprint, features_fp, kind)
    store.set_meta("base_fingerprint", fingerprint)
    return fingerprint


def project_missing(store: Store, weights: Path, fingerprint: str, features_fp: str, kind: str) -> int:
    """Vectors of `kind` under `fingerprint`, made from the cached features through the heads in `weights`, for
    the products whose features are current and whose vectors are missing (the towers do not run). Returns how
    many were made."""
    done = store.embedding_shas(fingerprint, kind)
    rowids, feats, shas = store.features(features_fp, kind)
    current = store.content_shas(kind)
    todo = [i for i, (r, sha) in enumerate(zip(rowids.tolist(), shas)) if current.get(r) == sha and done.get(r) != sha]
    if not todo:
        return 0
    from mmtui.encoders.lite import load_heads, project_features

    store.put_vectors(fingerprint, kind, rowids[todo].tolist(), [shas[i] for i in todo],
                      project_features(load_heads(weights)[1], kind, feats[todo]))
    return len(todo)


def _read(weights: Path):
    from mmtui.encoders.lite import read_checkpoint

    return read_checkpoint(weights)


def _file_sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _device(settings: Settings) -> str:
    from mmtui.encoders import pick_device

    return pick_device(settings.device)


# -- open_clip: the residual adapter on cached vectors ----------------------------------------------------

def _adapt_open_clip(settings: Settings, store: Store, progress: ProgressCallback,
                     cancel: threading.Event | None) -> Adaptation:
    from mmtui.errors import TrainingError
    from mmtui.train.adapter import train_adapter
    from mmtui.train.data import load_pairs

    base = store.get_meta("base_fingerprint")
    try:
        data = load_pairs(store, base)
    except TrainingError as exc:
        return Adaptation("too-few-pairs", f"not adapted: {exc.message}")
    n_train, n_val = len(data.train), len(data.val)
    if n_train < MIN_TRAIN_PAIRS or n_val < MIN_VAL_PAIRS:
        return Adaptation("too-few-pairs", f"{n_train} training and {n_val} validation pairs: too few to adapt "
                          "the model to this catalog", "base", n_train, n_val)
    digest = hashlib.sha1(data.train.rowids.tobytes() + data.train.query.tobytes()[:1 << 20]).hexdigest()[:16]
    previous = read_adaptation(store)
    if isinstance(previous, AdapterAdaptation) and previous.adapter_digest == digest and previous.base == base:
        return Adaptation("unchanged", "the residual adapter was trained on these pairs: nothing trained",
                          previous.model, n_train, n_val)
    progress(ProgressEvent("adapt", 0, None, "training the residual adapter on this catalog's cached vectors"))
    result = train_adapter(settings, store=store, reindex=False, progress=progress, cancel=cancel)
    model = result["name"] if result["promoted"] else "base"
    store.set_meta(ADAPTATION_KEY, AdapterAdaptation(digest, base, model).to_json())
    p = result["promotion"]
    return Adaptation("adapter", f"residual adapter {result['name']}: " + (p.get("reason") or ""), model,
                      n_train, n_val, {"title->picture": {"r10": p.get("previous_val_r10")}},
                      {"title->picture": {"r10": p.get("val_r10")}})
