"""Where the torch-free query models live in a data dir, and whether they are whole.

build-index exports the query-time towers to ONNX (mmtui.encoders.onnx_export) into
DATA_DIR/query-models/<key>/, with a manifest.json: the files' sizes and sha256, the versions that made them and
the torch-vs-ONNX check done at export. The key says which towers the files compute (not which heads: those run in
numpy on top), so heads adapted to a catalog reuse them. Searching checks sizes (cheap); `mmtui check` hashes.
Each set of heads the towers serve is checked against torch once (build-index, when the heads are new: shipped,
adapted at build, a promoted lite checkpoint): checks/<heads sha256>.json; a search uses the export only with heads
that passed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from mmtui.encoders.base import fingerprint_of
from mmtui.encoders.preprocess import PREPROCESS_VERSION

FORMAT = "mmtui-onnx-v1"  # bump when the exported graphs' inputs or outputs change
FOLDER = "query-models"
MANIFEST = "manifest.json"
CHECKS = "checks"  # one record per set of heads checked against torch on these towers
MIN_COSINE = 0.9999  # an export whose vectors differ more from torch's on the fixed sample is not used


def lite_key(config: dict) -> str:
    """The towers a lite config reads (the export does not depend on its heads)."""
    return "lite-" + fingerprint_of("onnx-lite", FORMAT, config.get("image_tower", "lite0"),
                                    config.get("text_tower", "all-MiniLM-L6-v2"), PREPROCESS_VERSION)


def openclip_key(fingerprint: str) -> str:
    """An open_clip model's export is its whole model: keyed by the model's own fingerprint."""
    return "openclip-" + fingerprint_of("onnx-openclip", FORMAT, fingerprint)


def root(data_dir: Path) -> Path:
    return Path(data_dir) / FOLDER


def folder(data_dir: Path, key: str) -> Path:
    return root(data_dir) / key


def read_manifest(path: Path) -> dict | None:
    """The manifest of the export in folder `path`, None when there is none or it is unreadable."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def heads_digest(config: dict, raw: bytes) -> str:
    """What identifies a set of lite heads: their weights and their config (sha256)."""
    return hashlib.sha256(raw + json.dumps(config, sort_keys=True).encode()).hexdigest()


def heads_check(path: Path, heads_sha: str) -> dict | None:
    """The record of the check of these heads (heads_digest) on the export in folder `path`, None when
    they were not checked (or the record is unreadable: then they are checked again)."""
    try:
        record = json.loads((Path(path) / CHECKS / f"{heads_sha}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("heads_sha256") == heads_sha else None


def write_heads_check(path: Path, heads_sha: str, check: dict, passed: bool, why: str = "") -> dict:
    """Record the check of these heads (passed or not), written atomically."""
    import os
    import time

    record = {"heads_sha256": heads_sha, "passed": passed, "why": why, "check": check,
              "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    folder_ = Path(path) / CHECKS
    folder_.mkdir(parents=True, exist_ok=True)
    tmp = folder_ / f".{heads_sha}.json.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder_ / f"{heads_sha}.json")
    return record


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: Path) -> dict:
    return {"bytes": path.stat().st_size, "sha256": sha256_of(path)}


def problems(path: Path, full: bool = False) -> dict[str, str]:
    """File name -> what is wrong with it ("missing", "truncated or grown", "changed since export"); `full` hashes
    the files, else only sizes are compared. {"manifest.json": ...} when there is no readable manifest."""
    manifest = read_manifest(path)
    if manifest is None:
        return {MANIFEST: "missing or unreadable"}
    out = {}
    for name, entry in manifest.get("files", {}).items():
        file = Path(path) / name
        try:
            size = file.stat().st_size
        except OSError:
            out[name] = "missing"
            continue
        if size != entry.get("bytes"):
            out[name] = f"truncated or grown ({size:,} bytes, {entry.get('bytes'):,} at export)"
        elif full and sha256_of(file) != entry.get("sha256"):
            out[name] = "changed since export (sha256 differs)"
    return out


def usable(data_dir: Path, key: str, full: bool = False) -> tuple[dict | None, str]:
    """(manifest, "") of a whole export of `key`, else (None, why not) for a one-line note. Sizes are compared;
    `full` hashes the files too (a build does, a search does not)."""
    path = folder(data_dir, key)
    if not path.is_dir():
        return None, "not exported yet"
    bad = problems(path, full)
    if bad:
        return None, "damaged: " + "; ".join(f"{name} {what}" for name, what in sorted(bad.items()))
    manifest = read_manifest(path)
    if manifest.get("key") != key:
        return None, "damaged: its manifest is for other towers"
    return manifest, ""


def exports(data_dir: Path) -> list[dict]:
    """Every export in the data dir as its manifest records it: [{"key", "model", "files", "bytes"}]."""
    out = []
    base = root(data_dir)
    for path in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
        if path.name.endswith(".partial"):  # an export that was interrupted: the next build removes it
            continue
        manifest = read_manifest(path) or {}
        files = manifest.get("files", {})
        out.append({"key": path.name, "model": manifest.get("model"), "files": len(files),
                    "bytes": sum(int(e.get("bytes", 0)) for e in files.values())})
    return out


def damaged(data_dir: Path) -> dict[str, str]:
    """{file inside the data dir: what is wrong} for every export, the files hashed (mmtui.build.caches)."""
    return {f"{FOLDER}/{export['key']}/{name}": problem for export in exports(data_dir)
            for name, problem in problems(folder(data_dir, export["key"]), full=True).items()}


def remove_others(data_dir: Path, keep: str) -> None:
    """Exports of other towers than `keep` (the index's model changed): nothing reads them any more."""
    base = root(data_dir)
    if base.is_dir():
        for path in base.iterdir():
            if path.is_dir() and path.name != keep:
                shutil.rmtree(path, ignore_errors=True)
