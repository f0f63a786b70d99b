"""`mmtui tui`: the terminal UI."""

from __future__ import annotations


import click

from mmtui.cli.common import data_dir_option, model_options, settings_from


# -- tui --------------------------------------------------------------------------------------
@click.command()
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

    settings = settings_from(data_dir, model, checkpoint, device)
    check_env_choice(ENV_VAR, PROTOCOLS)
    protocol = start_detecting()  # the terminal answers while Textual and the app import
    try:
        from mmtui.tui.app import run
    except BaseException:
        protocol()  # the probe puts the terminal back as it was before anything is printed
        raise
    run(settings, images=protocol)
