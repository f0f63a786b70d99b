"""The one place mmtui imports onnxruntime.

onnxruntime must be imported before usearch: the other order crashes the process (a segfault inside onnxruntime's
import, usearch 2.26.6 with onnxruntime 1.32.0; /work/scratch/speed notes). A module that imports usearch calls
`load()` first; if usearch is in already, `load()` raises ModelError instead of crashing, and the query encoder
falls back to torch with a note.
"""

from __future__ import annotations

import sys

from mmtui.errors import ModelError

CLASHING = ("usearch.compiled",)  # extension modules that crash onnxruntime's import when they came first


def load():
    """The onnxruntime module (imported on first call)."""
    if "onnxruntime" not in sys.modules:
        clash = [name for name in CLASHING if name in sys.modules]
        if clash:
            raise ModelError(f"onnxruntime cannot be imported after {clash[0]} (the process would crash)",
                             "import mmtui.encoders.ort and call load() before importing usearch")
    import onnxruntime

    return onnxruntime
