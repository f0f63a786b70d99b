"""`mmtui models` and `mmtui use`: the trained models of a data dir, and which one searches."""

from __future__ import annotations


import click

from mmtui.cli.common import data_dir_option, json_option, no_wait_option, print_json, settings_from


@click.command()
@data_dir_option
@json_option
def models(data_dir, as_json) -> None:
    """List the base model and every trained checkpoint; * marks the active one.

    \b
    Example:
      mmtui models && mmtui use adapter-001
    """
    from mmtui.train.promote import list_models

    rows = list_models(settings_from(data_dir))
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    from mmtui.cli.render import out

    table = Table(title="models", title_justify="left")
    for col in ("", "name", "kind", "val R@10", "test R@10", "created"):
        table.add_column(col)
    fmt = lambda v: f"{v:.4f}" if isinstance(v, (int, float)) else ""  # noqa: E731
    for r in rows:
        kind = f"{r['kind']}, adapted to this catalog" if r.get("adapted") else r["kind"]
        table.add_row("*" if r["active"] else "", r["name"], kind, fmt(r.get("val_r10")),
                      fmt(r.get("test_r10")), str(r.get("created") or ""))
    out.print(table)


@click.command()
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

    settings = settings_from(data_dir)
    store = Store.open(settings.db_path)
    try:
        with progress_printer() as progress, writing(settings, "use", progress):
            promotion = use_model(settings, name, store=store, reindex=reindex_for(settings, name, store))
    finally:
        store.close()
    click.echo(f"active model: {promotion.name} (was {promotion.previous})")
