"""mmtui's layers, lowest first: a module imports only modules of its own layer or of a lower one.

    core        config, errors, progress, splits, metrics, store, ann, lexical, filters, catalog/, vocab,
                queries (queries generated from the store), tags (stored zero-shot tags)
    models      encoders/, projection, train.projector / train.checkpoints / train.heads (reading heads and
                checkpoints)
    query       search, hybrid (fusion of ranked lists), fusion (fused product vectors)
    write       build, enrich, train/ (learning heads, fusion and hybrid weights; fine-tuning; promotion)
    evaluation  evaluate, modes
    front       cli, console, tui/

Where a lower layer needs behaviour of a higher one, the caller passes it in (a function or an object).
tests/unit/test_layers.py reads every import (function-level ones too) and fails on an import up the layers
and on any import cycle. A new module needs its place here (the longest matching prefix wins).
"""

from __future__ import annotations

LAYERS = ("core", "models", "query", "write", "evaluation", "front")

LAYER_OF = {
    "mmtui": "core",  # the package itself (__version__)
    "mmtui.layers": "core",
    "mmtui.config": "core",
    "mmtui.errors": "core",
    "mmtui.progress": "core",
    "mmtui.splits": "core",
    "mmtui.metrics": "core",
    "mmtui.store": "core",
    "mmtui.ann": "core",
    "mmtui.lexical": "core",
    "mmtui.filters": "core",
    "mmtui.filter_columns": "core",
    "mmtui.catalog": "core",
    "mmtui.vocab": "core",
    "mmtui.queries": "core",
    "mmtui.facets": "core",
    "mmtui.phrasings": "core",
    "mmtui.attribute_queries": "core",
    "mmtui.tags": "core",
    "mmtui.datadir": "core",
    "mmtui.generations": "core",
    "mmtui.backend": "core",
    "mmtui.qdrant_store": "core",
    "mmtui.encoders": "models",
    "mmtui.projection": "models",
    "mmtui.train.projector": "models",
    "mmtui.train.checkpoints": "models",
    "mmtui.train.heads": "models",
    "mmtui.search": "query",
    "mmtui.hybrid": "query",
    "mmtui.fusion": "query",
    "mmtui.understand": "query",
    "mmtui.facet_rank": "query",
    "mmtui.understand_state": "query",
    "mmtui.qdrant_search": "query",
    "mmtui.build": "write",
    "mmtui.indexing": "write",
    "mmtui.qdrant_sync": "write",
    "mmtui.ray_encode": "write",
    "mmtui.enrich": "write",
    "mmtui.train": "write",
    "mmtui.evaluate": "evaluation",
    "mmtui.modes": "evaluation",
    "mmtui.shopper_eval": "evaluation",
    "mmtui.cli": "front",
    "mmtui.console": "front",
    "mmtui.options": "front",
    "mmtui.tui": "front",
}


def layer_of(module: str) -> str | None:
    """The layer of a module ("mmtui.train.finetune" -> "write"), by the longest prefix in LAYER_OF."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        layer = LAYER_OF.get(".".join(parts[:n]))
        if layer is not None:
            return layer
    return None
