"""The data dir's derived files besides the index files: the word vectors of query understanding
(DATA_DIR/understand), the heads adapted to the catalog (DATA_DIR/adapted) and the torch-free query models
(DATA_DIR/query-models). They are read in full like the index files (`mmtui check` lists a damaged one); a build
removes a damaged one, and it is made again: the word vectors by the next search that needs them (or a build that
learns the understanding), the heads by the build's adapting step, the query models by its export step.
"""

from __future__ import annotations

from mmtui.config import Settings
from mmtui.encoders import onnx_files
from mmtui.encoders.for_index import adapted_heads_problem
from mmtui.query.understanding.parse import word_cache_problem, word_caches
from mmtui.store.db import Store


def damaged_derived(settings: Settings, store: Store | None) -> dict[str, str]:
    """{file inside the data dir: why it cannot be used} for every damaged derived file."""
    out = {}
    for path in word_caches(settings.data_dir):
        problem = word_cache_problem(path)
        if problem:
            out[str(path.relative_to(settings.data_dir))] = problem
    heads = adapted_heads_problem(settings, store)
    if heads is not None:
        out[heads[0]] = heads[1]
    out.update(onnx_files.damaged(settings.data_dir))  # a search already falls back to torch on a damaged one
    return out


def remove_damaged(settings: Settings, store: Store | None) -> dict[str, str]:
    """Delete the damaged derived files (what makes them makes them again); returns what was removed and why."""
    damaged = damaged_derived(settings, store)
    for name in damaged:
        (settings.data_dir / name).unlink(missing_ok=True)
    return damaged
