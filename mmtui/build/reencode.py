"""What switching to a model must redo: a fine-tuned encoder changes every vector, so the catalog is encoded again
with it (build-index, incremental by fingerprint); a head only needs the indexes rebuilt from cached vectors.

Kept apart from promotion so that promoting (which build-index's adapting step reaches) never imports the build.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmtui.build.pipeline import build_index
from mmtui.config import Settings
from mmtui.errors import TrainingError
from mmtui.store.db import Store
from mmtui.encoders.checkpoints import finetuned_settings, load_checkpoint
from mmtui.train.promote import BASE, Reindex


def reindex_for(settings: Settings, name: str, store: Store) -> Reindex | bool:
    """A callable for promote/use_model that encodes the catalog again for fine-tuned encoders; True otherwise."""
    if name == BASE:
        return True
    ckpt = load_checkpoint(settings.checkpoints_dir, name)
    if ckpt.kind not in ("finetune", "lit"):
        return True

    def encode_again(s: Settings) -> None:
        catalog = store.get_meta("catalog")
        if not catalog or not Path(catalog).exists():
            raise TrainingError(f"the index's catalog {catalog or '(not recorded)'} is not there, so the "
                                f"catalog cannot be encoded again with {name}",
                                f"run `mmtui build-index CATALOG --model {ckpt.config.get('model_spec')} "
                                f"--checkpoint {ckpt.weights_path}`")
        columns = json.loads(store.get_meta("catalog_columns") or "{}") or None
        build_index(finetuned_settings(s, ckpt.path), catalog, columns=columns, keep_missing=True)

    return encode_again
