"""onnxruntime is imported in one place (mmtui.encoders.ort), which refuses to import it after usearch: that order
crashes the process (usearch 2.26.6 with onnxruntime 1.32.0), and a refusal lets the query model fall back to torch."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_only_encoders_ort_imports_onnxruntime():
    importers = []
    for path in (REPO / "mmtui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "onnxruntime" or n.startswith("onnxruntime.") for n in names):
                importers.append(str(path.relative_to(REPO)))
    assert importers == ["mmtui/encoders/ort.py"]


def test_after_usearch_onnxruntime_is_refused_not_crashed():
    if not (importlib.util.find_spec("usearch") and importlib.util.find_spec("onnxruntime")):  # not imported here
        pytest.skip("usearch and onnxruntime are both needed")
    code = ("import usearch.index\nfrom mmtui.errors import ModelError\nfrom mmtui.encoders import ort\n"
            "try:\n    ort.load()\nexcept ModelError as exc:\n    print('refused:', exc.message)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert "refused: onnxruntime cannot be imported after usearch" in done.stdout


def test_before_usearch_both_import():
    if not (importlib.util.find_spec("usearch") and importlib.util.find_spec("onnxruntime")):  # not imported here
        pytest.skip("usearch and onnxruntime are both needed")
    code = "from mmtui.encoders import ort\nort.load()\nimport usearch.index\nprint('ok')\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
