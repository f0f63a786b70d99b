"""`mmtui train ...`: heads, adapters, fine-tuning and the learned weights, on your own catalog."""

from __future__ import annotations

from pathlib import Path

import click

from mmtui.cli.options import count, fraction, non_negative, positive_float
from mmtui.cli.common import Group, data_dir_option, json_option, no_wait_option, print_json, settings_from


# -- train ------------------------------------------------------------------------------------
@click.group(cls=Group)
def train() -> None:
    """Train on your own catalog: a head on cached vectors (seconds to minutes) or a fine-tune.

    \b
    Each run writes a versioned checkpoint (safetensors + JSON, loss curves) and becomes the
    active model only if it beats the current one on the validation split (--force overrides).
    \b
    Examples:
      mmtui train adapter
      mmtui train mlp --epochs 20
      mmtui train finetune --epochs 3
      mmtui models
    """


def _train_options(f):
    f = click.option("--force", is_flag=True, help="Make it the active model even if validation says it is worse.")(f)
    f = click.option("--device", default=None, help="cpu, cuda, cuda:N or mps [default: CUDA when available].")(f)
    return no_wait_option(data_dir_option(f))


def _run_training(fn, settings, **kwargs) -> None:
    from mmtui.cli.render import out, progress_printer
    from mmtui.train.promote import run_summary

    with progress_printer() as progress:
        result = fn(settings, progress=progress, **kwargs)
    for line in run_summary(result):
        out.print(line, highlight=False)
    return result


@train.command("adapter")
@click.option("--epochs", type=count(1, 10_000), default=10, show_default=True)
@click.option("--alpha", type=non_negative(100.0), default=0.2, show_default=True,
              help="Residual scale: y = x + alpha * f(x).")
@click.option("--batch-size", type=count(2, 65_536), default=256, show_default=True)
@click.option("--lr", default=None, type=positive_float(10.0),
              help="Learning rate of the heads [default: 1e-3 for lite, 1e-4 for open_clip models; "
                   "logit scale: 1e-3].")
@click.option("--hard-negatives", type=fraction(), default=0.0, show_default=True,
              help="Share of batches drawn from look-alike clusters (0 = random batches).")
@_train_options
def train_adapter_cmd(epochs, alpha, batch_size, lr, hard_negatives, force, device, data_dir) -> None:
    """Residual adapter y = x + alpha*f(x) on both towers' cached vectors, InfoNCE loss.

    Nothing is encoded again: it trains on the vectors the build cached and re-indexes from them.
    """
    from mmtui.train.adapter import train_adapter

    _run_training(train_adapter, settings_from(data_dir, device=device), epochs=epochs, alpha=alpha,
                  batch_size=batch_size, lr=lr, hard_negatives=hard_negatives, force=force)


@train.command("mlp")
@click.option("--epochs", type=count(1, 10_000), default=10, show_default=True)
@click.option("--batch-size", type=count(2, 65_536), default=256, show_default=True)
@click.option("--lr", type=positive_float(10.0), default=1e-3, show_default=True)
@_train_options
def train_mlp_cmd(epochs, batch_size, lr, force, device, data_dir) -> None:
    """Two-tower MLP baseline (512-512-256, margin ranking loss), to compare the adapter with."""
    from mmtui.train.mlp import train_mlp

    _run_training(train_mlp, settings_from(data_dir, device=device), epochs=epochs, batch_size=batch_size, lr=lr,
                  force=force)


@train.command("finetune")
@click.option("--epochs", type=count(1, 10_000), default=None, help="[default: 5 for open_clip, 20 for lite]")
@click.option("--batch-size", type=count(2, 65_536), default=None, help="[default: 32 for open_clip, 256 for lite]")
@click.option("--lr", type=positive_float(10.0), default=None, help="Learning rate of the tower weights [default: 1e-4].")
@click.option("--weight-decay", type=non_negative(10.0), default=None,
              help="[default: 0.01 for open_clip, 0.05 for lite]")
@click.option("--no-augment", is_flag=True, help="Train without image augmentations.")
@click.option("--max-train", default=None, type=count(2), help="Use at most N training products (a quick run).")
@click.option("--tails", type=click.Choice(["both", "text", "image"]), default="both", show_default=True,
              help="lite: which towers' last layers to unfreeze (the image tail is ~5x slower on a CPU).")
@_train_options
def train_finetune_cmd(epochs, batch_size, lr, weight_decay, no_augment, max_train, tails, force, device,
                       data_dir) -> None:
    """Fine-tune the model's towers on image-title pairs.

    \b
    open_clip models: every weight but the logit scale, contrastive loss (sigmoid loss for SigLIP),
    augmentations, mixed precision on CUDA. lite: the text tower's last layers and the last image blocks,
    going on from the current model's weights. Slow on a CPU. Promoting the result encodes the catalog
    again with the new weights.

    \b
    Example (lite, text tail only: ~25 s an epoch on 2 cores for 6k products):
      mmtui train finetune --tails text
    """
    from mmtui.build.reencode import reindex_for
    from mmtui.cli.render import out
    from mmtui.train.finetune import train_finetune

    result = _run_training(train_finetune, settings_from(data_dir, device=device), epochs=epochs,
                           batch_size=batch_size, lr=lr, weight_decay=weight_decay, augment=not no_augment,
                           max_train=max_train, tails=tails, force=force, encode_again=reindex_for)
    if result.get("checkpoint"):
        where = "" if str(result["model"]).startswith("lite:") else f" --checkpoint {result['checkpoint']}"
        out.print(f"load it with: --model {result['model']}{where}", highlight=False)


@train.command("lit")
@click.option("--epochs", type=count(1, 10_000), default=20, show_default=True)
@click.option("--patience", type=count(1), default=5, show_default=True, help="Stop after this many epochs without a better val MRR.")
@click.option("--catalog", type=click.Path(exists=True, path_type=Path), default=None,
              help="Train from this catalog directly (no index needed) and write lite.safetensors + lite.json "
                   "to --out: how the shipped weights are made.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --catalog: where to write the weights.")
@_train_options
def train_lit_cmd(epochs, patience, catalog, out, force, device, data_dir) -> None:
    """The lite model's projection heads (locked towers, learned heads) on your catalog's title-image pairs.

    \b
    On an index built with lite: a checkpoint that becomes the active model if it beats the current
    one on validation (the catalog is then encoded again with it).
    \b
    Reproduce the shipped weights (held-out products: the test split):
      mmtui train lit --catalog path/to/fashion --out mmtui/encoders/weights
    """
    settings = settings_from(data_dir, device=device)
    if catalog is None:
        from mmtui.build.reencode import reindex_for
        from mmtui.train.finetune import train_lit_heads

        _run_training(train_lit_heads, settings, epochs=epochs, patience=patience, force=force,
                      encode_again=reindex_for)
        return
    if out is None:
        raise click.UsageError("--catalog needs --out DIR (where lite.safetensors + lite.json are written)")
    _train_lit_from_catalog(settings, catalog, out, epochs=epochs, patience=patience, device=settings.device)


def _train_lit_from_catalog(settings, catalog: Path, out: Path, *, epochs: int, patience: int, device) -> None:
    from mmtui.catalog.readers import read_catalog
    from mmtui.catalog.images import resolve_images
    from mmtui.cli.render import out as console, progress_printer
    from mmtui.encoders.lite import default_weights, read_checkpoint
    from mmtui.train.lit import train_lit

    shipped, _, _ = read_checkpoint(default_weights())
    config = {k: v for k, v in shipped.items() if k not in ("metrics", "format", "image_dims", "preprocess")}
    data = read_catalog(catalog)
    with progress_printer() as progress:
        resolve_images(data.products, data.base_dir, settings.image_cache_dir, progress=progress)
        products = [p for p in data.products if p.image_status == "ok"]
        metrics = train_lit(products, out, cache_dir=settings.data_dir / "cache" / "features", epochs=epochs,
                            patience=patience, config=config, device=device, progress=progress)
    for split in ("val", "test"):
        m = metrics.get(split) or {}
        if m:
            console.print(f"{split} ({m.get('n')} products, title -> own image): R@1 {m['r1']:.3f}  R@5 {m['r5']:.3f}"
                          f"  R@10 {m['r10']:.3f}  MRR {m['mrr']:.3f}", highlight=False)
    console.print(f"best epoch {metrics.get('best_epoch')}; weights in {out}; use them with "
                  f"--model lite:{out / 'lite.safetensors'}", highlight=False)


@train.command("hybrid")
@click.option("--split", default="val", show_default=True, type=click.Choice(["train", "val"]))
@click.option("--metric", default="ndcg@10", show_default=True, type=click.Choice(["ndcg@10", "recall@10"]))
@click.option("--judged", is_flag=True,
              help="Learn the signal weights from your own judgements (made in the TUI), split by query into "
                   "train and validation; kept only if better on the held-out judged queries.")
@click.option("--force", is_flag=True, help="With --judged: keep the learned weights even if validation says worse.")
@data_dir_option
@no_wait_option
@json_option
def train_hybrid_cmd(split, metric, judged, force, data_dir, as_json) -> None:
    """Learn the fused image weight and the hybrid signal weights on the validation split.

    \b
    Examples:
      mmtui train hybrid && mmtui search "black casual shoes for men" --json
      mmtui train hybrid --judged
    """
    from mmtui.cli.render import fit_table, out, progress_printer
    from mmtui.train.weights.hybrid import train_hybrid
    from mmtui.store.datadir import writing

    settings = settings_from(data_dir)
    if judged:
        _train_hybrid_judged(settings, metric, force, as_json)
        return
    with progress_printer(quiet=as_json) as progress, writing(settings, "train hybrid", progress):
        fusion, fit = train_hybrid(settings, split=split, metric=metric, progress=progress)
    if as_json:
        print_json({"fusion": fusion.to_json(), "hybrid": fit.to_json()})
        return
    out.print(fit_table(fusion, fit))


def _judged_texts(settings) -> tuple[list[tuple[str, dict[str, int]]], int]:
    """The judged text queries (text, grades), and how many judged image or "more like" queries are left out."""
    from mmtui.evaluation.judged import require_judged
    from mmtui.store.judgements import JudgementStore

    queries, _ = require_judged(JudgementStore(settings))
    texts = [(q.text, dict(q.relevant)) for q in queries if q.kind == "text"]
    return texts, len(queries) - len(texts)


def _train_hybrid_judged(settings, metric, force, as_json) -> None:
    from mmtui.cli.render import out, progress_printer
    from mmtui.cli.reports import judged_fit_table
    from mmtui.train.weights.hybrid import learn_hybrid_judged

    texts, other = _judged_texts(settings)
    with progress_printer(quiet=as_json) as progress:
        fit = learn_hybrid_judged(settings, texts, metric=metric, force=force, progress=progress)
    fit.skipped = {"image_or_like_queries": other} if other else {}
    if as_json:
        print_json(fit.to_json())
        return
    out.print(judged_fit_table(fit))


@train.command("understanding")
@click.option("--judged", is_flag=True,
              help="Learn from your own judged queries (made in the TUI) instead of generated ones, split by query; "
                   "kept only if better on the held-out judged queries.")
@click.option("--force", is_flag=True, help="With --judged: keep the learned weights even if validation says worse.")
@data_dir_option
@json_option
def train_understanding_cmd(judged, force, data_dir, as_json) -> None:
    """Learn how much the understood kind, person, colour and brand weigh in hybrid ranking.

    Learned on the catalog's own generated queries of the train split, chosen on validation
    (--judged: on your judged queries, split by query).

    \b
    Examples:
      mmtui train understanding && mmtui search "ladies black watches"
      mmtui train understanding --judged
    """
    from mmtui.cli.render import out
    from mmtui.query.service import SearchService
    from mmtui.cli.reports import understanding_table
    from mmtui.store.datadir import writing
    from mmtui.train.weights.understanding import learn_understanding

    settings = settings_from(data_dir)
    texts = _judged_texts(settings)[0] if judged else None
    service = SearchService.open(settings)
    try:
        with writing(settings, "train understanding"):
            fit = learn_understanding(service, judged=texts, force=force)
    finally:
        service.close()
    if as_json:
        print_json(fit.to_json())
        return
    out.print(understanding_table(fit))
