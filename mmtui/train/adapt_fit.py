"""The training and the measures behind build-time adaptation (mmtui.train.adapt): the lite heads' two linear maps
trained on a catalog's cached features, how well a set of heads finds pictures from words on held-out products, the
test that keeps adapted heads, and the ImageNet bridge's weight chosen for a catalog.

Everything here reads cached features (numpy arrays in a dict per split, see mmtui.train.adapt._pairs): no tower runs.
"""

from __future__ import annotations

import copy
import threading

import numpy as np

from mmtui.metrics import beats_chance, paired_retrieval, ranks_of_targets
from mmtui.progress import ProgressCallback, ProgressEvent, check_cancel

# The weights the ImageNet bridge may take for a catalog (image vector = head + w * bridge, both unit length): a
# catalog the heads never saw (IKEA) wants 3 or more, one they learned (Fashion, Grocery) 0.4-1.
BRIDGE_WEIGHTS = (0.0, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0)
# Softmax temperatures over the bridge's top classes: 2 placed IKEA and Grocery pictures best, 1 is the sharper one.
BRIDGE_TEMPERATURES = (1.0, 2.0, 3.0)


# -- measures ---------------------------------------------------------------------------------------------

def category_queries(part: dict, min_products: int = 2) -> list[tuple[str, np.ndarray]]:
    """(query text, positions in the split's pairs) per product kind with at least `min_products` there (the kinds
    are mmtui.train.adapt._kind_of's: the article type, else the last step of the category)."""
    groups: dict[str, list[int]] = {}
    for pos, kind in enumerate(part.get("kinds") or []):
        if kind:
            groups.setdefault(kind, []).append(pos)
    return [(kind, np.asarray(p)) for kind, p in sorted(groups.items()) if len(p) >= min_products]


def figures(heads, part: dict, queries: list, query_features: np.ndarray | None) -> dict:
    """How well `heads` find pictures in `part`: each title -> its own picture, and category words -> pictures.
    Keys starting with "_" hold per-query figures for the keep test (not for reports)."""
    from mmtui.encoders.lite import project_features
    from mmtui.train.weights.fusion import matrix_metrics_per_query

    pictures = project_features(heads, "image", part["img"])
    titles = project_features(heads, "title", part["txt"])
    paired = paired_retrieval(titles, pictures)
    out = {"title->picture": {"r1": round(paired["recall@1"], 4), "r10": round(paired["recall@10"], 4),
                              "mrr": round(paired["mrr"], 4), "n": int(paired["n_queries"])},
           "_rr": 1.0 / ranks_of_targets(titles @ pictures.T, np.arange(len(titles)))}
    if query_features is not None and len(queries):
        q = project_features(heads, "text", query_features)
        relevant = np.zeros((len(queries), len(pictures)), bool)
        for i, (_, positions) in enumerate(queries):
            relevant[i, positions] = True
        per = matrix_metrics_per_query(q @ pictures.T, relevant)["ndcg@10"]
        out["category->picture"] = {"ndcg@10": round(float(per.mean()), 4), "n": len(queries)}
        out["_ndcg"] = per
    return out


def score(f: dict) -> float:
    """What adapting must beat: title -> picture R@10 + MRR, plus category words -> pictures nDCG@10."""
    t = f["title->picture"]
    return t["r10"] + t["mrr"] + f.get("category->picture", {}).get("ndcg@10", 0.0)


def public(f: dict) -> dict:
    return {k: v for k, v in f.items() if not k.startswith("_")}


def judge(before: dict, after: dict, chance: float, z: float = 2.0) -> tuple[bool, str]:
    """Whether adapted heads (`after`) replace the shipped ones (`before`), and why, in plain words. They must be
    better on validation (R@10 + MRR + category nDCG), clearly so on titles or on category words (the per-query
    gain averages more than `z` standard errors: on a small validation split a chance gain would replace a good model
    with an overfitted one), clearly worse on neither, and better than chance themselves."""
    t = after["title->picture"]
    if not beats_chance(t["r10"] * t["n"], t["n"], chance):
        return False, (f"the adapted model finds titles' pictures no better than chance ({t['r10']:.0%} in the top "
                       f"10, chance {chance:.0%})")
    title, category = _gain(before, after, "_rr", z), _gain(before, after, "_ndcg", z)
    worse = [name for name, g in (("titles", title), ("category words", category)) if g < 0]
    better = [name for name, g in (("titles", title), ("category words", category)) if g > 0]
    if score(after) <= score(before) + 1e-9:
        return False, "the adapted model scored lower on the held-out products than the shipped one"
    if worse:
        return False, (f"the adapted model finds pictures from {' and '.join(worse)} clearly worse than the shipped "
                       "one on the held-out products")
    if not better:
        return False, (f"its gain on {t['n']} held-out products is within what chance gives (it must beat the shipped "
                       f"model by more than {z:g} standard errors on titles or on category words)")
    return True, f"it finds pictures from {' and '.join(better)} clearly better on the held-out products"


def _gain(before: dict, after: dict, key: str, z: float) -> int:
    """+1 when `after`'s per-query figure `key` beats `before`'s by more than z standard errors, -1 when it is worse
    by as much, 0 otherwise (or when there is nothing to compare)."""
    if key not in before or key not in after or len(before[key]) != len(after[key]) or len(after[key]) < 2:
        return 0
    gain = np.asarray(after[key], np.float64) - np.asarray(before[key], np.float64)
    se = gain.std(ddof=1) / np.sqrt(len(gain))
    if gain.mean() > z * se and gain.mean() > 0:
        return 1
    return -1 if gain.mean() < -z * se and gain.mean() < 0 else 0


# -- the ImageNet bridge's weight -------------------------------------------------------------------------

def choose_bridge_weight(heads, part: dict, queries: list, query_features: np.ndarray | None,
                         grid: tuple[float, ...] = BRIDGE_WEIGHTS,
                         temperatures: tuple[float, ...] = BRIDGE_TEMPERATURES) -> float:
    """Set the bridge weight and softmax temperature of `heads` to the pair of `grid` x `temperatures` that scores
    best on `part` (ties keep the current pair) and return the weight (the temperature is in heads.image.bridge).
    Only re-projection: milliseconds for a validation split."""
    import torch

    weight, bridge = heads.image.bridge_weight, heads.image.bridge
    best_w, best_t = float(weight.detach()), float(bridge.get("temperature", 1.0))
    best = score(figures(heads, part, queries, query_features))
    with torch.no_grad():
        for t in temperatures:
            bridge["temperature"] = t
            for w in grid:
                weight.fill_(w)
                s = score(figures(heads, part, queries, query_features))
                if s > best + 1e-9:
                    best_w, best_t, best = w, t, s
        weight.fill_(best_w)
    bridge["temperature"] = best_t
    return best_w


# -- training ---------------------------------------------------------------------------------------------

def fit(base, pairs: dict, *, device: str, epochs: int = 30, lr: float = 1e-3, weight_decay: float = 0.05,
        batch_size: int = 256, patience: int = 8, seed: int = 0, progress: ProgressCallback,
        cancel: threading.Event | None, queries: list | None = None, query_features: np.ndarray | None = None,
        kinds: tuple[np.ndarray, np.ndarray] | None = None):
    """The heads' two linear maps trained on the train pairs (symmetric InfoNCE), warm-started from `base`; with
    `kinds` ((kind id per train pair, -1 for none), MiniLM features per kind) each picture learns its kind's words
    too. The epoch with the best validation score (with `queries`, category words count) is kept.
    Returns (heads, epochs run)."""
    import torch

    threads = torch.get_num_threads()
    if device == "cpu":  # small matrices: one thread is as fast, and two wait on each other on a busy machine
        torch.set_num_threads(1)  # (measured: 0.3 s vs 11.6 s for the test catalog with another process running)
    try:
        state = _Training(base, pairs, device, lr, weight_decay, batch_size, epochs, seed, kinds)
        return state.run(epochs, patience, queries or [], query_features, progress, cancel)
    finally:
        torch.set_num_threads(threads)


class _Training:
    """One adaptation run: the heads, their optimiser and the training data on `device`."""

    def __init__(self, base, pairs: dict, device: str, lr: float, weight_decay: float, batch_size: int,
                 epochs: int, seed: int, kinds: tuple[np.ndarray, np.ndarray] | None) -> None:
        import torch

        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.device, self.batch_size, self.pairs = device, batch_size, pairs
        self.heads = copy.deepcopy(base).to(device)
        self.img = torch.from_numpy(pairs["train"]["img"]).to(device)
        self.txt = torch.from_numpy(pairs["train"]["txt"]).to(device)
        self.kind_ids = self.kind_features = None
        if kinds is not None and len(kinds[1]) and (kinds[0] >= 0).any():
            self.kind_ids = torch.from_numpy(np.asarray(kinds[0], np.int64)).to(device)
            self.kind_features = torch.from_numpy(np.asarray(kinds[1], np.float32)).to(device)
        heads = self.heads
        params = [*heads.image.proj.parameters(), *heads.text.proj.parameters(), heads.logit_scale]
        if heads.image.bridge and heads.image.bridge.get("learn_weight", True):
            params.append(heads.image.bridge_weight)
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        self.n = len(self.img)
        self.steps = max(1, int(np.ceil(self.n / batch_size)))
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=lr, total_steps=epochs * self.steps,
                                                         pct_start=0.1)

    def run(self, epochs: int, patience: int, queries: list, query_features: np.ndarray | None,
            progress: ProgressCallback, cancel: threading.Event | None):
        best, best_state, bad, run, loss = -1.0, None, 0, 0, float("nan")
        for epoch in range(1, epochs + 1):
            run = epoch
            loss = self.epoch(cancel)
            self.heads.eval()
            f = figures(copy.deepcopy(self.heads).cpu(), self.pairs["val"], queries, query_features)
            s = score(f)
            category = f.get("category->picture", {}).get("ndcg@10")
            progress(ProgressEvent("adapt", epoch, epochs, f"epoch {epoch}: validation title -> picture R@10 "
                                   f"{f['title->picture']['r10']:.3f}" + (f", category words nDCG@10 {category:.3f}"
                                                                         if category is not None else ""),
                                   metrics={"epoch": epoch, "train_loss": loss, "val_r10": f["title->picture"]["r10"]}))
            if s > best + 1e-9:
                best, bad = s, 0
                best_state = {k: v.detach().cpu().clone() for k, v in self.heads.state_dict().items()}
            else:
                bad += 1
                if bad >= patience:
                    break
        heads = self.heads.cpu()
        heads.load_state_dict(best_state)
        return heads.eval(), run

    def epoch(self, cancel: threading.Event | None) -> float:
        """One pass over the train pairs in a fresh order; returns the last batch's loss."""
        import torch

        self.heads.train()
        perm = self.rng.permutation(self.n)
        loss = torch.zeros(())
        for s in range(self.steps):
            check_cancel(cancel)
            idx = torch.from_numpy(np.sort(perm[s * self.batch_size:(s + 1) * self.batch_size])).to(self.device)
            loss = self.loss(idx)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            with torch.no_grad():
                self.heads.logit_scale.clamp_(0, float(np.log(100)))
        return float(loss.detach())

    def loss(self, idx):
        """Symmetric InfoNCE of the batch's titles and pictures, plus (with kinds) its kinds' words and pictures."""
        import torch
        from torch.nn import functional as F

        heads = self.heads
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.startswith("cuda") else torch.autocast(
            "cpu", enabled=False)
        with amp:
            zi = heads.image.flat(self.img[idx])
            zt = heads.text.proj(heads.text.drop(self.txt[idx]))
        zi, zt = F.normalize(zi.float(), dim=-1), F.normalize(zt.float(), dim=-1)
        scale = heads.logit_scale.exp()
        logits = scale * zt @ zi.T
        target = torch.arange(len(idx), device=zi.device)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        if self.kind_ids is not None:
            loss = loss + self.kind_loss(idx, zi, scale)
        return loss

    def kind_loss(self, idx, zi, scale):
        """The batch's kinds' words against its pictures: each kind finds all of its pictures (multi-positive), each
        picture its kind among the batch's kinds. Zero for a batch whose pictures have no kind."""
        import torch
        from torch.nn import functional as F

        ids = self.kind_ids[idx]
        has = ids >= 0
        if not bool(has.any()):
            return torch.zeros((), device=zi.device)
        kinds, inv = torch.unique(ids[has], return_inverse=True)
        zk = F.normalize(self.heads.text.proj(self.kind_features[kinds]).float(), dim=-1)
        lk = scale * zk @ zi[has].T  # (kinds, pictures)
        own = inv[None, :] == torch.arange(len(kinds), device=zi.device)[:, None]
        kind_to_pictures = -(torch.logsumexp(lk.masked_fill(~own, -1e4), 1) - torch.logsumexp(lk, 1)).mean()
        picture_to_kind = F.cross_entropy(lk.T, inv)
        return 0.5 * (kind_to_pictures + picture_to_kind)
