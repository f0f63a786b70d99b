"""Adapting the model to the catalog, as part of build-index.

The shipped lite heads learned fashion; on other catalogs words find pictures at chance. The catalog's own
title-picture pairs fix that: the heads (two linear maps over frozen-tower features) are trained again on the
catalog's train split, warm-started from the shipped ones, and kept only if they beat them on the validation split.
The features the heads read were cached by the build's own encode pass (Store.put_features), so adapting runs no
tower: it costs head training (seconds) and one matrix product per product to re-project the cached features.

When it runs again: when there is no adaptation yet, when the heads it started from changed, or when at least
READAPT_SHARE of the catalog's current training pairs (title + picture, by content) were not among those it
was trained on. Below that, new products are encoded with the adapted heads as they are.
Below MIN_TRAIN_PAIRS training pairs (or MIN_VAL_PAIRS validation pairs), the shipped heads are kept: too few
pairs to learn from or to tell whether learning helped.

For other models (open_clip), the same step trains the residual adapter on the cached vectors
(mmtui.train.adapter) and promotes it when it beats the base model on validation.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmtui.config import Settings
from mmtui.encoders.for_index import ADAPTATION_KEY, AdapterAdaptation, HeadsAdaptation, read_adaptation
from mmtui.metrics import beats_chance, paired_retrieval, ranks_of_targets
from mmtui.progress import ProgressCallback, ProgressEvent, check_cancel, null_progress
from mmtui.store.db import Store

# A validation split under ~20 products cannot tell a real gain from noise, so the keep test needs this many
# pairs (measured on IKEA and Fashion samples: docs/figures.md, "Adapting to the catalog").
MIN_TRAIN_PAIRS = 100
MIN_VAL_PAIRS = 20
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
    result = _adapt(settings, store, encoder, enabled, progress, cancel, device)
    if result.model in ("shipped", "adapted") and getattr(encoder, "feature_fingerprint", None):
        from mmtui.encoders import lite_weights
        from mmtui.encoders.for_index import adapted_weights

        result.weights = (adapted_weights(settings, store, store.get_meta("base_model") or "lite")
                          if result.model == "adapted" else lite_weights(store.get_meta("base_model") or "lite"))
    return result


def _adapt(settings: Settings, store: Store, encoder, enabled: bool, progress: ProgressCallback,
           cancel: threading.Event | None, device: str | None) -> Adaptation:
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
        return _switch_off(job)
    if job.n_train < MIN_TRAIN_PAIRS or job.n_val < MIN_VAL_PAIRS:
        return _too_few_pairs(job)
    job.base_sha, job.current = _file_sha(job.shipped), _pair_keys(job.pairs["train"])
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
    previous: HeadsAdaptation | None
    pairs: dict[str, dict]  # per split, see _pairs
    base_sha: str = ""  # the shipped heads' content (set once there are enough pairs)
    current: np.ndarray | None = None  # the training pairs' keys (idem)

    @classmethod
    def gather(cls, settings: Settings, store: Store, encoder, features_fp: str) -> _Job:
        from mmtui.encoders import lite_weights

        spec = store.get_meta("base_model") or "lite"
        previous = read_adaptation(store)
        return cls(settings, store, encoder, features_fp, spec, lite_weights(spec),
                   previous if isinstance(previous, HeadsAdaptation) else None, _pairs(store, features_fp))

    @property
    def n_train(self) -> int:
        return len(self.pairs["train"]["rowids"])

    @property
    def n_val(self) -> int:
        return len(self.pairs["val"]["rowids"])

    @property
    def chance(self) -> float:
        return min(1.0, 10 / self.n_val) if self.n_val else 0.0

    def use(self, weights: Path) -> None:
        _use_heads(self.settings, self.store, weights, self.features_fp)

    def shipped_figures(self) -> dict:
        return _shipped_figures(self.store, self.encoder, self.shipped, self.pairs["val"])


def _switch_off(job: _Job) -> Adaptation:
    """--no-adapt: the shipped heads, with the previous adaptation kept (marked off) for a later build."""
    job.use(job.shipped)
    if job.previous:
        job.previous.disabled = True
        job.store.set_meta(ADAPTATION_KEY, job.previous.to_json())
    return Adaptation("off", "adapting is off (--no-adapt): the shipped heads are in use", "shipped",
                      job.n_train, job.n_val, job.shipped_figures(), chance_r10=job.chance)


def _too_few_pairs(job: _Job) -> Adaptation:
    job.use(job.shipped)
    return Adaptation("too-few-pairs", f"{job.n_train} training and {job.n_val} validation pairs of title and "
                      f"picture: too few to adapt the model to this catalog (it needs {MIN_TRAIN_PAIRS} and "
                      f"{MIN_VAL_PAIRS}); the shipped model is in use", "shipped", job.n_train, job.n_val,
                      job.shipped_figures(), chance_r10=job.chance)


def _reuse(job: _Job) -> Adaptation | None:
    """The previous adaptation, put back in use, when it started from the same shipped heads and under
    READAPT_SHARE of today's training pairs are new to it; None when the heads must be trained again."""
    previous, data_dir = job.previous, job.settings.data_dir
    if previous is None or previous.base_sha != job.base_sha or previous.for_model != job.spec:
        return None
    weights = data_dir / previous.weights if previous.weights else None
    trained_on = _read_keys(data_dir / previous.pairs) if previous.pairs else None
    if trained_on is None or (previous.model == "adapted" and (weights is None or not weights.is_file())):
        return None
    new = int((~np.isin(job.current, trained_on)).sum())
    if new >= READAPT_SHARE * len(job.current):
        return None
    job.use((weights if previous.model == "adapted" else None) or job.shipped)
    previous.disabled = False
    job.store.set_meta(ADAPTATION_KEY, previous.to_json())
    return Adaptation("unchanged", f"{new} of {len(job.current)} training pairs are new since the model was last "
                      f"adapted (it adapts again at {READAPT_SHARE:.0%}): nothing trained", previous.model,
                      job.n_train, job.n_val, previous.before, previous.after, job.chance)


def _train(job: _Job, progress: ProgressCallback, cancel: threading.Event | None, device: str,
           started: float) -> Adaptation:
    """Heads trained on the catalog's pairs, saved, and put in use when they beat the shipped ones on validation."""
    from mmtui.encoders.lite import load_heads

    progress(ProgressEvent("adapt", 0, None, f"adapting the model to this catalog ({job.n_train} training pairs)"))
    _, base_heads = load_heads(job.shipped)
    val = job.pairs["val"]
    queries = _category_queries(job.store, val)
    query_features = _query_features(job.encoder, queries)
    before = _figures(base_heads, val, queries, query_features)
    heads, epochs = _fit_with_and_without_bridge(base_heads, job.pairs, queries, query_features, device,
                                                 progress, cancel)
    check_cancel(cancel)
    path, keys_path = _save_adapted(job, heads)
    _, saved = load_heads(path)  # the weights as stored (fp16): the vectors must be those a loaded encoder makes
    after = _figures(saved, val, queries, query_features)
    better = keep_adapted(before, after, job.chance)
    record = _record_choice(job, path, keys_path, better, _public(before), _public(after))
    seconds = round(time.perf_counter() - started, 1)
    verb = "adapted to this catalog" if better else "not better than the shipped model on validation: shipped kept"
    return Adaptation("adapted" if better else "kept-shipped", f"model {verb}", record.model, job.n_train,
                      job.n_val, record.before, record.after, job.chance, seconds, epochs)


def _fit_with_and_without_bridge(base_heads, pairs: dict, queries: list, query_features: np.ndarray | None,
                                 device: str, progress: ProgressCallback, cancel: threading.Event | None):
    """_fit's heads, and where the image head has an ImageNet bridge, the better on validation of heads trained
    with it and without it. Returns (heads, epochs run)."""
    import copy

    import torch

    heads, epochs = _fit(base_heads, pairs, device=device, progress=progress, cancel=cancel)
    if not base_heads.image.bridge:
        return heads, epochs
    # The bridge helps heads that know nothing of a catalog; once they learned it, its shared classes can blur
    # kinds apart (docs/figures.md, "Adapting to the catalog"), so validation picks.
    plain = copy.deepcopy(base_heads)
    with torch.no_grad():
        plain.image.bridge_weight.zero_()
    other, other_epochs = _fit(plain, pairs, device=device, progress=progress, cancel=cancel)
    if _score(_figures(other, pairs["val"], queries, query_features)) > _score(
            _figures(heads, pairs["val"], queries, query_features)):
        return other, other_epochs
    return heads, epochs


def _save_adapted(job: _Job, heads) -> tuple[Path, Path]:
    """The trained heads and the keys of the pairs they learned from, saved under adapted/ (named by both)."""
    from mmtui.train.lit import save_checkpoint

    out_dir = job.settings.data_dir / ADAPTED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    config = _read(job.shipped)[0]
    name = f"lite-{hashlib.sha1(job.current.tobytes() + job.base_sha.encode()).hexdigest()[:12]}"
    save_checkpoint(heads, {k: v for k, v in config.items() if k != "metrics"}, {}, out_dir, name=name)
    keys_path = out_dir / f"{name}.pairs.npy"
    np.save(keys_path, job.current)
    return out_dir / f"{name}.safetensors", keys_path


def _record_choice(job: _Job, path: Path, keys_path: Path, better: bool, before: dict,
                   after: dict) -> HeadsAdaptation:
    """Put the winning heads in use, delete the losing and the previous files, and record the adaptation."""
    job.use(path if better else job.shipped)
    if not better:
        for stale in (path, path.with_suffix(".json")):
            stale.unlink(missing_ok=True)
    rel = lambda p: str(p.relative_to(job.settings.data_dir))  # noqa: E731
    record = HeadsAdaptation(for_model=job.spec, weights=rel(path) if better else None, pairs=rel(keys_path),
                             model="adapted" if better else "shipped", base_sha=job.base_sha, n_train=job.n_train,
                             n_val=job.n_val, before=before, after=after, at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    _remove_old(job.settings, job.previous, keep=path.stem)
    job.store.set_meta(ADAPTATION_KEY, record.to_json())
    return record


def _shipped_figures(store: Store, encoder, shipped: Path, val: dict) -> dict:
    """The shipped heads' validation figures, for the summary of a build that does not adapt (none without pairs)."""
    if len(val["rowids"]) < 2:
        return {}
    from mmtui.encoders.lite import load_heads

    queries = _category_queries(store, val)
    return _public(_figures(load_heads(shipped)[1], val, queries, _query_features(encoder, queries)))


# -- the pairs ------------------------------------------------------------------------------------------------

def _pairs(store: Store, features_fp: str) -> dict[str, dict]:
    """Per split: rowids, picture features, title features and pair keys of products with both."""
    img_rows, img, img_shas = store.features(features_fp, "image")
    txt_rows, txt, txt_shas = store.features(features_fp, "title")
    current = {r: (split, isha, tsha) for r, split, isha, tsha in store.db.execute(
        "SELECT rowid, split, image_sha, title_sha FROM products WHERE image_status = 'ok'")}
    at_txt = {int(r): i for i, r in enumerate(txt_rows.tolist())}
    out = {s: {"rowids": [], "img": [], "txt": [], "keys": []} for s in ("train", "val", "test")}
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
    for part in out.values():
        part["rowids"] = np.asarray(part["rowids"], np.int64)
        part["img"] = img[part["img"]] if len(part["img"]) else np.zeros((0, img.shape[1] if img.ndim == 2 else 0), np.float32)
        part["txt"] = txt[part["txt"]] if len(part["txt"]) else np.zeros((0, txt.shape[1] if txt.ndim == 2 else 0), np.float32)
    return out


def _pair_keys(part: dict) -> np.ndarray:
    """Sorted 64-bit hashes of a split's (picture content, title content) pairs."""
    return np.sort(np.array([int.from_bytes(hashlib.sha1(k.encode()).digest()[:8], "big") for k in part["keys"]],
                            dtype=np.uint64))


def _read_keys(path: Path) -> np.ndarray | None:
    try:
        return np.load(path)
    except (OSError, ValueError):
        return None


# -- category-style queries: what shoppers type more than titles ------------------------------------------

def _category_queries(store: Store, part: dict, min_products: int = 2) -> list[tuple[str, np.ndarray]]:
    """(query text, positions in the split's pairs) per product kind with at least `min_products` there: the
    article type where the catalog has one, else the last step of the category ("Fruit > Apple" -> "apple")."""
    if not len(part["rowids"]):
        return []
    rows = {r: (a, c) for r, a, c in store.db.execute(
        "SELECT rowid, coalesce(article_type, ''), coalesce(category, '') FROM products WHERE image_status = 'ok'")}
    groups: dict[str, list[int]] = {}
    for pos, r in enumerate(part["rowids"].tolist()):
        article, category = rows.get(r, ("", ""))
        kind = (article.strip() or category.split(">")[-1].strip()).lower()
        if kind:
            groups.setdefault(kind, []).append(pos)
    return [(kind, np.asarray(p)) for kind, p in sorted(groups.items()) if len(p) >= min_products]


def _query_features(encoder, queries: list[tuple[str, np.ndarray]]) -> np.ndarray | None:
    if not queries:
        return None
    return encoder.encode_texts_with_features([q for q, _ in queries])[1]


def _figures(heads, val: dict, queries: list, query_features: np.ndarray | None) -> dict:
    """Validation figures of `heads`: each title -> its own picture, and category words -> pictures."""
    from mmtui.encoders.lite import project_features
    from mmtui.train.weights.fusion import matrix_metrics

    pictures = project_features(heads, "image", val["img"])
    titles = project_features(heads, "title", val["txt"])
    paired = paired_retrieval(titles, pictures)
    out = {"title->picture": {"r1": round(paired["recall@1"], 4), "r10": round(paired["recall@10"], 4),
                              "mrr": round(paired["mrr"], 4), "n": int(paired["n_queries"])},
           "_rr": 1.0 / ranks_of_targets(titles @ pictures.T, np.arange(len(titles)))}
    if query_features is not None:
        q = project_features(heads, "text", query_features)
        relevant = np.zeros((len(queries), len(pictures)), bool)
        for i, (_, positions) in enumerate(queries):
            relevant[i, positions] = True
        m = matrix_metrics(q @ pictures.T, relevant)
        out["category->picture"] = {"ndcg@10": round(m["ndcg@10"], 4), "n": len(queries)}
    return out


def keep_adapted(before: dict, after: dict, chance: float, z: float = 2.0) -> bool:
    """Whether adapted heads replace the shipped ones: better on validation (R@10 + MRR + category nDCG), clearly
    so (each title's reciprocal rank of its own picture gains, on average, more than `z` standard errors: on a small
    validation split a chance gain would replace a good model with an overfitted one), and better than chance
    themselves (between two rankings at chance the "better" one is noise)."""
    t = after["title->picture"]
    if not (_score(after) > _score(before) + 1e-9 and beats_chance(t["r10"] * t["n"], t["n"], chance)):
        return False
    gain = after["_rr"] - before["_rr"]
    return bool(gain.mean() > z * gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else False


def _public(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if not k.startswith("_")}


def _score(figures: dict) -> float:
    """What adapting must beat: validation title -> picture R@10 + MRR, plus category -> picture nDCG@10."""
    t = figures["title->picture"]
    return t["r10"] + t["mrr"] + figures.get("category->picture", {}).get("ndcg@10", 0.0)


# -- training ---------------------------------------------------------------------------------------------

def _fit(base, pairs: dict, *, device: str, epochs: int = 40, lr: float = 1e-3, weight_decay: float = 0.05,
         batch_size: int = 256, patience: int = 8, seed: int = 0, progress: ProgressCallback,
         cancel: threading.Event | None):
    """The heads' two linear maps trained on the train pairs (symmetric InfoNCE), warm-started from `base`;
    the epoch with the best validation R@10 + MRR is kept. Returns (heads, epochs run)."""

    import torch

    threads = torch.get_num_threads()
    if device == "cpu":  # small matrices: one thread is as fast, and two wait on each other on a busy machine
        torch.set_num_threads(1)  # (measured: 0.3 s vs 11.6 s for the test catalog with another process running)
    try:
        return _fit_heads(base, pairs, device, epochs, lr, weight_decay, batch_size, patience, seed, progress, cancel)
    finally:
        torch.set_num_threads(threads)


def _fit_heads(base, pairs, device, epochs, lr, weight_decay, batch_size, patience, seed, progress, cancel):
    import copy

    import torch
    from torch.nn import functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    heads = copy.deepcopy(base).to(device)
    img = torch.from_numpy(pairs["train"]["img"]).to(device)
    txt = torch.from_numpy(pairs["train"]["txt"]).to(device)
    params = [*heads.image.proj.parameters(), *heads.text.proj.parameters(), heads.logit_scale]
    if heads.image.bridge and heads.image.bridge.get("learn_weight", True):
        params.append(heads.image.bridge_weight)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    n = len(img)
    steps = max(1, int(np.ceil(n / batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.1)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else torch.autocast(
        "cpu", enabled=False)
    best, best_state, bad, run = -1.0, None, 0, 0
    for epoch in range(1, epochs + 1):
        run = epoch
        heads.train()
        perm = rng.permutation(n)
        for s in range(steps):
            check_cancel(cancel)
            idx = torch.from_numpy(np.sort(perm[s * batch_size:(s + 1) * batch_size])).to(device)
            with amp:
                zi = heads.image.flat(img[idx])
                zt = heads.text.proj(heads.text.drop(txt[idx]))
            zi, zt = F.normalize(zi.float(), dim=-1), F.normalize(zt.float(), dim=-1)
            logits = heads.logit_scale.exp() * zt @ zi.T
            target = torch.arange(len(idx), device=device)
            loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                heads.logit_scale.clamp_(0, float(np.log(100)))
        heads.eval()
        cpu = copy.deepcopy(heads).cpu()
        figures = _figures(cpu, pairs["val"], [], None)
        score = _score(figures)
        progress(ProgressEvent("adapt", epoch, epochs, f"epoch {epoch}: validation title -> picture "
                               f"R@10 {figures['title->picture']['r10']:.3f}", metrics={"epoch": epoch,
                               "train_loss": float(loss.detach()), "val_r10": figures["title->picture"]["r10"]}))
        if score > best + 1e-9:
            best, best_state, bad = score, {k: v.detach().cpu().clone() for k, v in heads.state_dict().items()}, 0
        else:
            bad += 1
            if bad >= patience:
                break
    heads = heads.cpu()
    heads.load_state_dict(best_state)
    return heads.eval(), run


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


def _remove_old(settings: Settings, previous: HeadsAdaptation | None, keep: str) -> None:
    """Delete the files of the previous adaptation (its vectors stay until their products change)."""
    for rel in (previous.weights, previous.pairs) if previous else ():
        if not rel or Path(rel).name.startswith(f"{keep}."):
            continue
        path = settings.data_dir / rel
        for stale in (path, path.with_suffix(".json")):
            if stale.suffix in (".safetensors", ".json", ".npy"):
                stale.unlink(missing_ok=True)


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
