"""`mmtui check` and `mmtui rejects`: what is in a data dir, and what the last build could not use."""

from __future__ import annotations

import sys

import click

from mmtui.cli.options import count
from mmtui.progress import counted
from mmtui.cli.common import data_dir_option, json_option, print_json, settings_from


def _query_model(settings, store) -> dict:
    """Which model a search would encode its queries with, and why not the exported one (no session is opened)."""
    from mmtui.encoders.query_encoder import exported_query_encoder
    from mmtui.errors import MmtuiError

    try:
        encoder, note = exported_query_encoder(settings, store)
    except MmtuiError as exc:  # e.g. no model recorded yet
        encoder, note = None, exc.message
    return {"onnx": encoder is not None, "note": note}


# -- check ------------------------------------------------------------------------------------
@click.command()
@data_dir_option
@json_option
def check(data_dir, as_json) -> None:
    """Check every index file against the size and checksum recorded when it was written, and read the
    derived files (the word vectors of query understanding, the heads adapted to the catalog, the torch-free
    query models) in full.

    \b
    Exits with status 1 when a file is missing, truncated or corrupted (`mmtui build-index CATALOG`
    makes exactly those again), and counts cached vectors that no product matches any more.
    Example:
      mmtui check --data-dir shop-index
    """
    from mmtui.build.caches import damaged_derived
    from mmtui.encoders import onnx_files
    from mmtui.index.generations import damaged, verify
    from mmtui.store.db import Store

    settings = settings_from(data_dir)
    store = Store.open(settings.db_path)
    try:
        report = verify(settings.ann_dir)
        report["stale_vectors"] = store.stale_vector_count()
        report["derived_problems"] = damaged_derived(settings, store)
        report["query_model"] = _query_model(settings, store)
    finally:
        store.close()
    report["query_models"] = onnx_files.exports(settings.data_dir)  # the torch-free query models build-index exports
    if as_json:
        print_json(report)
    else:
        click.echo(f"{report['generation']}: {counted(report['files'], 'file')}, {report['bytes'] / 1e6:.1f} MB "
                   f"checked in {report['seconds']:.2f} s" + ("" if report["checksums"] else
                                                   " (written by an older version: no checksums to check)"))
        for export in report["query_models"]:
            click.echo(f"{onnx_files.FOLDER}/{export['key']}: {export['files']} files, {export['bytes'] / 1e6:.1f} MB "
                       "(the torch-free query model)")
        if not report["query_models"]:
            click.echo(f"{onnx_files.FOLDER}: none")
        click.echo("queries: " + ("encoded without torch (ONNX Runtime)" if report["query_model"]["onnx"]
                                  else report["query_model"]["note"] or "encoded with torch"))
        for name, problem in sorted(report["problems"].items()):
            click.echo(f"  damaged: {name}: {problem}")
        for name, problem in sorted(report["derived_problems"].items()):
            click.echo(f"  damaged: {name}: {problem} (the next build-index makes it again)")
        if report["stale_vectors"]:
            stale = counted(report["stale_vectors"], "cached vector")
            click.echo(f"  {stale} match{'es' if report['stale_vectors'] == 1 else ''} no product "
                       "(the next build removes them)")
    if report["problems"] or report["derived_problems"]:
        if as_json:
            sys.exit(1)
        if not report["problems"]:
            raise damaged("data dir", settings.data_dir, counted(len(report["derived_problems"]), "damaged file"))
        raise damaged("index", report["directory"], counted(len(report["problems"]), "damaged file"))
    if not as_json:
        click.echo("ok")


# -- rejects ----------------------------------------------------------------------------------
@click.command()
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

    store = Store.open(settings_from(data_dir).db_path)
    try:
        rows, counts = store.rejects(reason, limit), store.rejects_by_reason()
    finally:
        store.close()
    if as_json:
        print_json({"counts": counts, "rejects": rows})
        return
    from mmtui.cli.render import print_rejects

    print_rejects(counts, rows)
