"""`mmtui build-index` and `mmtui enrich`: the commands that write a data dir from a catalog."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mmtui.cli.options import count
from mmtui.cli.common import data_dir_option, json_option, model_options, no_wait_option, print_json, settings_from


# -- build-index ------------------------------------------------------------------------------
@click.command("build-index")
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

    settings = settings_from(data_dir, model, checkpoint, device)
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
        print_json(report.to_json())
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


# -- enrich -----------------------------------------------------------------------------------
@click.command()
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

    settings = settings_from(data_dir)
    with progress_printer(quiet=as_json) as progress:
        report = enrichment.enrich(settings, progress=progress)
    if as_json:
        print_json(report.to_json() if hasattr(report, "to_json") else report.__dict__)
        return
    out.print(reports.enrich_table(report))
    if show_conflicts:
        from mmtui.store.db import Store

        out.print(reports.conflicts_table(enrichment.conflicts(Store.open(settings.db_path))))
