"""The `mmtui` command line: a thin click group. Heavy modules are imported inside the commands,
so `mmtui --help` loads neither torch nor textual. Library errors become one clear message + hint here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mmtui.config import Settings
from mmtui.errors import MmtuiError
from mmtui.cli.options import count, fraction, non_negative, positive_float


class Group(click.Group):
    """Turns MmtuiError from any command into a message and a hint, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MmtuiError as exc:
            raise click.ClickException(f"{exc.message}\n  hint: {exc.hint}" if exc.hint else exc.message) from None


def data_dir_option(f):
    return click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="Where the index lives [env MMTUI_DATA_DIR; default ./index].")(f)


def model_options(f):
    f = click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Local weights file for an openclip model (offline use).")(f)
    f = click.option("--device", default=None,
                     help="cpu, cuda, cuda:N or mps [env MMTUI_DEVICE; default: CUDA when available].")(f)
    return click.option("--model", default=None,
                        help="lite (default, offline) or openclip:ARCH/PRETRAINED [env MMTUI_MODEL].")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def where_option(f):
    return click.option("--where", "wheres", multiple=True, metavar="EXPR",
                        help="Filter, repeatable: colour=Black, price<50, gender!=Men, category~Shoes.")(f)


def no_wait_option(f):
    """--no-wait for commands that write to the data dir: fail at once if another process is writing there."""

    def remember(ctx: click.Context, _param, value: bool) -> bool:
        if value:
            ctx.meta["mmtui.lock_timeout"] = 0.0
        return value

    return click.option("--no-wait", is_flag=True, expose_value=False, callback=remember,
                        help="If another mmtui process is writing to the data dir, fail at once instead of "
                             "waiting for it [env MMTUI_LOCK_TIMEOUT: seconds to wait, default 600].")(f)


def _settings(data_dir=None, model=None, checkpoint=None, device=None) -> Settings:
    ctx = click.get_current_context(silent=True)
    lock_timeout = ctx.meta.get("mmtui.lock_timeout") if ctx is not None else None
    return Settings.load(data_dir=data_dir, model=model, checkpoint=checkpoint, device=device,
                         lock_timeout=lock_timeout)


def _print_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


@click.group(cls=Group, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mmtui")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Search a product catalog by words or by picture, offline.

    \b
    Quick start:
      mmtui build-index sample_catalog
      mmtui search "navy blue shirt for men"
      mmtui search --image sample_catalog/images/12969.jpg
      mmtui tui

    With no command, opens the terminal UI.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui)


# -- build-index ------------------------------------------------------------------------------
@cli.command("build-index")
@click.argument("catalog", type=click.Path(exists=True, path_type=Path))
@data_dir_option
@model_options
@click.option("--columns", default=None, metavar="MAP",
              help="Map our fields to your columns: title=productDisplayName,image=img_url")
@click.option("--batch-size", type=count(1, 4096), default=32, show_default=True,
              help="Images per encoding batch (1-4096).")
@click.option("--no-adapt", is_flag=True, help="Use the shipped model as it is: do not adapt it to this catalog.")
@click.option("--backend", default=None, metavar="SPEC",
              help="Where searches run, recorded in the data dir: local (hnswlib files, the default), qdrant:DIR "
                   "(embedded Qdrant) or qdrant+http://HOST:6333 (a Qdrant server; key from MMTUI_QDRANT_API_KEY).")
@click.option("--ray", "on_ray", is_flag=True, help="Encode on Ray: the cluster RAY_ADDRESS names, else a local "
                                                    "Ray started for this build (pip install 'mmtui[ray]').")
@click.option("--ray-actors", type=count(1, 10_000), default=None, metavar="N",
              help="With --ray: actors in the encode pool (default: one per GPU, else one per 2 CPUs).")
@no_wait_option
@json_option
def build_index_cmd(catalog, data_dir, model, checkpoint, device, columns, batch_size, no_adapt, backend, on_ray,
                    ray_actors, as_json) -> None:
    """Read CATALOG (a folder or a CSV/JSONL file), validate it, encode it and build the indexes.

    \b
    Re-running on an unchanged catalog encodes nothing; new or changed products are encoded;
    a build that was killed is finished by the next run.
    The model is adapted to the catalog's own title-picture pairs (seconds, no second pass over the
    images) and kept only if it beats the shipped model on held-out products; the summary says how
    well words find pictures before and after, and how much each signal counts in hybrid search.
    \b
    Example:
      mmtui build-index sample_catalog
      mmtui build-index products.jsonl --columns title=name,image=img_url --data-dir shop-index
      mmtui build-index sample_catalog --backend qdrant:qdrant-data
      RAY_ADDRESS=10.0.0.5:6379 mmtui build-index /shared/catalog --ray
    """
    from mmtui.build.pipeline import build_index
    from mmtui.catalog.readers import parse_columns
    from mmtui.cli.render import progress_printer

    settings = _settings(data_dir, model, checkpoint, device)
    mapping = parse_columns(columns) if columns else None
    if backend is not None:
        from mmtui.index.backends.spec import choose_backend
        from mmtui.index.backends.qdrant.client import check_usable

        choose_backend(settings, backend, check=check_usable)
    try:
        with progress_printer(quiet=as_json) as progress, _ray_encode(settings, on_ray, ray_actors) as encode_on:
            report = build_index(settings, catalog, columns=mapping, progress=progress, batch_size=batch_size,
                                 adapt=not no_adapt, encode_on=encode_on)
    except KeyboardInterrupt:
        click.echo("Interrupted. Everything encoded so far is saved: run the same command again to finish.",
                   err=True)
        sys.exit(130)
    if as_json:
        _print_json(report.to_json())
        return
    from mmtui.cli.render import print_build_report

    print_build_report(report, settings)


def _ray_encode(settings, on_ray: bool, actors: int | None):
    """build-index --ray: a mmtui.build.ray_encode.RayEncode context (Ray is imported only then), else nothing."""
    import contextlib

    if not on_ray:
        if actors is not None:
            raise click.UsageError("--ray-actors needs --ray")
        return contextlib.nullcontext()
    from mmtui.build.ray_encode import RayEncode

    return RayEncode(settings, actors=actors)


# -- search -----------------------------------------------------------------------------------
@cli.command()
@click.argument("text", required=False)
@click.option("--image", "image", type=click.Path(path_type=Path), default=None, help="Search by this picture.")
@click.option("-k", "k", type=count(1, 10_000), default=10, show_default=True, help="Number of results (1-10000).")
@click.option("--mode", type=click.Choice(["image", "text", "lexical", "fused", "hybrid"]), default=None,
              help="image: vs product images; text: vs product texts; lexical: BM25; fused: one vector per "
                   "product from its image and text; hybrid: all signals fused "
                   "[default: hybrid for text, image for --image].")
@click.option("--drop", "drops", multiple=True, type=click.Choice(["kind", "person", "colour", "brand", "price"]),
              help="Leave this part of what the query was understood to ask for out (repeatable).")
@click.option("--literal", is_flag=True, help="Take the words as they are: no query understanding.")
@where_option
@data_dir_option
@model_options
@json_option
def search(text, image, k, mode, drops, literal, wheres, data_dir, model, checkpoint, device, as_json) -> None:
    """Find products by TEXT or by --image PATH.

    The words are read against the catalog's kinds of product, persons, colours, brands and
    price phrases ("ladies black watches under 50"); what was understood is shown with the
    results, and ranks them in hybrid mode.

    \b
    Examples:
      mmtui search "black running shoes for men"
      mmtui search "ladies black watches" --drop colour
      mmtui search "red dress" --mode image -k 20 --where price<50
      mmtui search --image photo.jpg --json
    """
    from mmtui.store.filters import parse_where
    from mmtui.query.service import SearchService

    if bool(text) == bool(image):
        raise click.UsageError('give either TEXT or --image PATH, e.g. mmtui search "blue jeans"')
    filters = [parse_where(w) for w in wheres]
    service = SearchService.open(_settings(data_dir, model, checkpoint, device))
    if image is not None or mode != "lexical":
        service.load_model()  # so the time printed with the results is the search's, not the model's loading
    if image is not None:
        result = service.search_image(image, k=k, mode=mode or "image", filters=filters)
    else:
        result = service.search(text, k=k, mode=mode or "hybrid", filters=filters, understand=not literal,
                                drop=drops)
    if as_json:
        _print_json(result.to_json())
        return
    from mmtui.cli.render import print_hits

    print_hits(result)


# -- eval -------------------------------------------------------------------------------------
@cli.command("eval")
@click.argument("queries", required=False, type=click.Path(path_type=Path))
@click.option("--split", "split", type=click.Choice(["train", "val", "test"]), default=None,
              help="Evaluate on a split of the catalog itself: each product's title finds its own image.")
@click.option("--pool", type=click.Choice(["split", "catalog"]), default="split", show_default=True,
              help="With --split: search among the split's products, or the whole catalog.")
@click.option("--compare", is_flag=True, help="Compare every trained model with zero-shot on the split (seed 000 table).")
@click.option("--compare-modes", "compare_modes_", is_flag=True,
              help="Seed 004's table: every mode on title and attribute queries of the split (R@10, nDCG@10), "
                   "then shopper-phrased queries (P@10, nDCG@10) with and without query understanding.")
@click.option("--mode", type=click.Choice(["image", "text", "lexical", "fused", "hybrid"]), default=None,
              help="Search mode [default: hybrid for a queries file, image for --split].")
@click.option("-k", "k", type=count(1, 10_000), default=10, show_default=True,
              help="Cut-off shown next to the standard ones (1-10000).")
@where_option
@data_dir_option
@model_options
@json_option
def eval_cmd(queries, split, pool, compare, compare_modes_, mode, k, wheres, data_dir, model, checkpoint, device,
             as_json) -> None:
    """Measure retrieval quality: R@1/3/5/10, MRR, nDCG@10, P@10 and latency.

    \b
    QUERIES.jsonl has one query per line:
      {"query": "red summer dress", "relevant": {"15970": 2, "12967": 1}}
      {"image": "photos/shoe.jpg", "relevant": {"12967": 1}}
    \b
    Examples:
      mmtui eval queries.jsonl --mode hybrid --json
      mmtui eval --split test
      mmtui eval --compare
    """
    from mmtui.cli.render import out
    from mmtui.store.filters import parse_where

    settings = _settings(data_dir, model, checkpoint, device)
    if compare_modes_:
        _compare_modes(settings, queries, split or "test", pool, as_json)
        return
    if sum(bool(x) for x in (queries, split and not compare, compare)) != 1:
        raise click.UsageError("give QUERIES.jsonl, or --split test, or --compare (or --compare-modes)")
    if split and mode and mode != "image":
        raise click.UsageError("--split measures title -> image retrieval: drop --mode or use --mode image")
    filters = [parse_where(w) for w in wheres]
    from mmtui.cli import reports
    from mmtui.evaluation import evaluate

    if compare:
        report = evaluate.compare_models(settings, split or "test")
        if as_json:
            _print_json(report.to_json())
        else:
            out.print(reports.compare_table(report))
            out.print(f"[dim]saved to {report.path}[/]")
        return
    from mmtui.cli.render import progress_printer
    from mmtui.query.service import SearchService

    service = SearchService.open(settings)
    with progress_printer(lines_when_piped=True) as progress:  # stderr: stdout stays pure JSON with --json
        if queries:
            report = evaluate.evaluate_file(service, queries, mode=mode or "hybrid", k=k, filters=filters,
                                            progress=progress)
        else:
            report = evaluate.evaluate_split(service, split, k=k, pool=pool, filters=filters, progress=progress)
    path = evaluate.save_eval_report(settings, report)
    if as_json:
        _print_json(report.to_json())
        return
    out.print(reports.eval_table(report))
    skips = reports.skips_table(report.skips)
    if skips is not None:
        out.print(skips)
    out.print(f"[dim]saved to {path}[/]")


def _compare_modes(settings, queries, split, pool, as_json) -> None:
    from mmtui.evaluation import evaluate
    from mmtui.cli.render import out, progress_printer
    from mmtui.cli.reports import modes_table, shopper_table
    from mmtui.evaluation.modes import compare_modes, default_query_sets
    from mmtui.query.service import SearchService

    service = SearchService.open(settings)
    sets = default_query_sets(service.store, split)
    if queries:
        sets["file"], _ = evaluate.load_queries(queries)
    from mmtui.evaluation.shopper import compare_shopper, shopper_query_sets

    with progress_printer(quiet=as_json):
        report = compare_modes(service, sets, split=split if pool == "split" else None)
        shopper = compare_shopper(service, shopper_query_sets(service.store, split), split=split)
    if as_json:
        _print_json({**report.to_json(), "shopper": shopper.to_json()})
        return
    out.print(modes_table(report))
    for note in report.notes:
        out.print(f"[dim]{note}[/]")
    out.print(shopper_table(shopper))


# -- train ------------------------------------------------------------------------------------
@cli.group(cls=Group)
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
              help="Learning rate of the heads [default: 1e-3 for lite, 1e-4 (seed 000) for open_clip models; "
                   "logit scale: 1e-3].")
@click.option("--hard-negatives", type=fraction(), default=0.0, show_default=True,
              help="Share of batches drawn from look-alike clusters (0 = random batches).")
@_train_options
def train_adapter_cmd(epochs, alpha, batch_size, lr, hard_negatives, force, device, data_dir) -> None:
    """Residual adapter y = x + alpha*f(x) on both towers' cached vectors, InfoNCE (seed 000, Stage A).

    Nothing is encoded again: it trains on the vectors the build cached and re-indexes from them.
    """
    from mmtui.train.adapter import train_adapter

    _run_training(train_adapter, _settings(data_dir, device=device), epochs=epochs, alpha=alpha,
                  batch_size=batch_size, lr=lr, hard_negatives=hard_negatives, force=force)


@train.command("mlp")
@click.option("--epochs", type=count(1, 10_000), default=10, show_default=True)
@click.option("--batch-size", type=count(2, 65_536), default=256, show_default=True)
@click.option("--lr", type=positive_float(10.0), default=1e-3, show_default=True)
@_train_options
def train_mlp_cmd(epochs, batch_size, lr, force, device, data_dir) -> None:
    """Two-tower MLP baseline (512-512-256, margin ranking loss; seed 000, Experiment A)."""
    from mmtui.train.mlp import train_mlp

    _run_training(train_mlp, _settings(data_dir, device=device), epochs=epochs, batch_size=batch_size, lr=lr,
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
    """Fine-tune the model's towers on image-title pairs (seed 001).

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

    result = _run_training(train_finetune, _settings(data_dir, device=device), epochs=epochs,
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
    settings = _settings(data_dir, device=device)
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
@data_dir_option
@no_wait_option
@json_option
def train_hybrid_cmd(split, metric, data_dir, as_json) -> None:
    """Learn the fused image weight and the hybrid signal weights on the validation split.

    \b
    Example:
      mmtui train hybrid && mmtui search "black casual shoes for men" --json
    """
    from mmtui.cli.render import fit_table, out, progress_printer
    from mmtui.train.weights.hybrid import train_hybrid
    from mmtui.store.datadir import writing

    settings = _settings(data_dir)
    with progress_printer(quiet=as_json) as progress, writing(settings, "train hybrid", progress):
        fusion, fit = train_hybrid(settings, split=split, metric=metric, progress=progress)
    if as_json:
        _print_json({"fusion": fusion.to_json(), "hybrid": fit.to_json()})
        return
    out.print(fit_table(fusion, fit))


@train.command("understanding")
@data_dir_option
@json_option
def train_understanding_cmd(data_dir, as_json) -> None:
    """Learn how much the understood kind, person, colour and brand weigh in hybrid ranking.

    Learned on the catalog's own generated queries of the train split, chosen on validation.

    \b
    Example:
      mmtui train understanding && mmtui search "ladies black watches"
    """
    from mmtui.cli.render import out
    from mmtui.query.service import SearchService
    from mmtui.cli.reports import understanding_table
    from mmtui.train.weights.understanding import learn_understanding

    service = SearchService.open(_settings(data_dir))
    try:
        fit = learn_understanding(service)
    finally:
        service.close()
    if as_json:
        _print_json(fit.to_json())
        return
    out.print(understanding_table(fit))


@cli.command()
@data_dir_option
@json_option
def models(data_dir, as_json) -> None:
    """List the base model and every trained checkpoint; * marks the active one.

    \b
    Example:
      mmtui models && mmtui use adapter-001
    """
    from mmtui.train.promote import list_models

    rows = list_models(_settings(data_dir))
    if as_json:
        _print_json(rows)
        return
    from rich.table import Table

    from mmtui.cli.render import out

    table = Table(title="models", title_justify="left")
    for col in ("", "name", "kind", "val R@10", "test R@10", "created"):
        table.add_column(col)
    fmt = lambda v: f"{v:.4f}" if isinstance(v, (int, float)) else ""  # noqa: E731
    for r in rows:
        table.add_row("*" if r["active"] else "", r["name"], r["kind"], fmt(r.get("val_r10")),
                      fmt(r.get("test_r10")), str(r.get("created") or ""))
    out.print(table)


@cli.command()
@click.argument("name")
@data_dir_option
@no_wait_option
def use(name, data_dir) -> None:
    """Make NAME the active model (a checkpoint from `mmtui models`, or "base").

    \b
    Example:
      mmtui use adapter-002
    """
    from mmtui.cli.render import progress_printer
    from mmtui.store.datadir import writing
    from mmtui.store.db import Store
    from mmtui.train.promote import use_model
    from mmtui.build.reencode import reindex_for

    settings = _settings(data_dir)
    store = Store.open(settings.db_path)
    try:
        with progress_printer() as progress, writing(settings, "use", progress):
            promotion = use_model(settings, name, store=store, reindex=reindex_for(settings, name, store))
    finally:
        store.close()
    click.echo(f"active model: {promotion.name} (was {promotion.previous})")


# -- enrich -----------------------------------------------------------------------------------
@cli.command()
@click.option("--conflicts", "show_conflicts", is_flag=True, help="List products whose text contradicts their image.")
@data_dir_option
@no_wait_option
@json_option
def enrich(show_conflicts, data_dir, as_json) -> None:
    """Tag product images zero-shot (colour, pattern, material, type, style) and flag text/image conflicts.

    \b
    Tags are stored, shown in results and searchable by words. No image is encoded again.
    Example:
      mmtui enrich && mmtui search "striped" --mode lexical
    """
    from mmtui.build import enrich as enrichment
    from mmtui.cli import reports
    from mmtui.cli.render import out, progress_printer

    settings = _settings(data_dir)
    with progress_printer(quiet=as_json) as progress:
        report = enrichment.enrich(settings, progress=progress)
    if as_json:
        _print_json(report.to_json() if hasattr(report, "to_json") else report.__dict__)
        return
    out.print(reports.enrich_table(report))
    if show_conflicts:
        from mmtui.store.db import Store

        out.print(reports.conflicts_table(enrichment.conflicts(Store.open(settings.db_path))))


# -- check ------------------------------------------------------------------------------------
@cli.command()
@data_dir_option
@json_option
def check(data_dir, as_json) -> None:
    """Check every index file against the size and checksum recorded when it was written.

    \b
    Exits with status 1 when a file is missing, truncated or corrupted (`mmtui build-index CATALOG`
    rebuilds exactly those), and counts cached vectors that no product matches any more.
    Example:
      mmtui check --data-dir shop-index
    """
    from mmtui.index.generations import damaged, verify
    from mmtui.store.db import Store

    settings = _settings(data_dir)
    store = Store.open(settings.db_path)
    report = verify(settings.ann_dir)
    report["stale_vectors"] = store.stale_vector_count()
    store.close()
    if as_json:
        _print_json(report)
    else:
        click.echo(f"{report['generation']}: {report['files']} files, {report['bytes'] / 1e6:.1f} MB checked in "
                   f"{report['seconds']:.2f} s" + ("" if report["checksums"] else
                                                   " (written by an older version: no checksums to check)"))
        for name, problem in sorted(report["problems"].items()):
            click.echo(f"  damaged: {name}: {problem}")
        if report["stale_vectors"]:
            click.echo(f"  {report['stale_vectors']} cached vectors match no product (the next build removes them)")
    if report["problems"]:
        if as_json:
            sys.exit(1)
        raise damaged("index", report["directory"], f"{len(report['problems'])} damaged files")
    if not as_json:
        click.echo("ok")


# -- rejects ----------------------------------------------------------------------------------
@cli.command()
@click.option("--reason", default=None, help="Only this reason, e.g. image_corrupt.")
@click.option("--limit", type=count(1), default=50, show_default=True)
@data_dir_option
@json_option
def rejects(reason, limit, data_dir, as_json) -> None:
    """List the rows and images the last build rejected, with their reasons.

    \b
    Example:
      mmtui rejects --reason image_missing --limit 20
    """
    from mmtui.store.db import Store

    store = Store.open(_settings(data_dir).db_path)
    where, params = ("reason = ?", [reason]) if reason else ("1", [])
    rows = list(store.db.query(f"SELECT product_id, source, row, reason, detail, kept FROM rejects WHERE {where} "
                               f"ORDER BY id LIMIT ?", [*params, limit]))
    counts = store.rejects_by_reason()
    if as_json:
        _print_json({"counts": counts, "rejects": rows})
        return
    from mmtui.cli.render import print_rejects

    print_rejects(counts, rows)


# -- tui --------------------------------------------------------------------------------------
@cli.command()
@data_dir_option
@model_options
def tui(data_dir=None, model=None, checkpoint=None, device=None) -> None:
    """Open the terminal UI (search as you type, thumbnails, filters, training).

    \b
    Example:
      mmtui tui --data-dir index
    """
    from mmtui.config import check_env_choice
    from mmtui.tui.thumbnails import ENV_VAR, PROTOCOLS, start_detecting

    settings = _settings(data_dir, model, checkpoint, device)
    check_env_choice(ENV_VAR, PROTOCOLS)
    protocol = start_detecting()  # the terminal answers while Textual and the app import
    try:
        from mmtui.tui.app import run
    except BaseException:
        protocol()  # the probe puts the terminal back as it was before anything is printed
        raise
    run(settings, images=protocol)


def main() -> None:  # pragma: no cover
    cli(prog_name="mmtui")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
