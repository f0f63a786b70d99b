"""build-index --ray: the encode step of a build on a Ray actor pool.

The driver (this process) reads and validates the catalog and owns the store, as in a local build. Only the
encoding moves: the work list (build.missing: rows with no vector for this model and content) becomes a Ray
Dataset in shards, `map_batches` runs it on a pool of actors that each open the same encoder once (GPUs where
present, one per actor; CPU otherwise), and the driver writes the results as they stream back with the same
calls a local build uses (build.write_encoded). A killed job keeps every batch written; a re-run recomputes the
work list and encodes only what is missing.

Where: a local Ray started for the job (and stopped after), or the cluster RAY_ADDRESS names. Workers read
image files by the paths the driver validated: on a cluster they must see the same files (a shared filesystem).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmtui.build.pipeline import STAGES, decode_images, encode_batch, missing, write_encoded
from mmtui.config import Settings
from mmtui.encoders import lite_weights
from mmtui.encoders.base import Encoder
from mmtui.errors import MmtuiError
from mmtui.progress import ProgressCallback, ProgressEvent, check_cancel
from mmtui.store.db import Store

KINDS = ("image", "title", "text")
INSTALL_HINT = "install it with: pip install 'mmtui[ray]' (or build without --ray)"
MISMATCH = "mmtui-ray: fingerprint mismatch"


class RayError(MmtuiError):
    """Ray is missing, unreachable, or the encode job failed on it."""


@dataclass(frozen=True)
class EncoderSpec:
    """What an actor needs to open the driver's encoder: serialisable, no file the worker may not have."""
    model: str  # a load_encoder spec: "lite", "openclip:ARCH/PRETRAINED", "fake"
    fingerprint: str  # the driver's: an actor whose encoder differs refuses to encode
    feature_fingerprint: str | None  # set: features are kept for adapting the heads, as a local build keeps them
    checkpoint: str | None = None  # a path (openclip): the workers must see it
    heads: bytes | None = None  # lite heads other than the shipped ones (adapted to the catalog): .safetensors
    heads_config: str | None = None  # ... and their .json
    device: str | None = None  # None: "cuda" where the actor has a GPU, else "cpu"
    threads: int = 1  # torch threads of a CPU actor: its CPUs

    @classmethod
    def of(cls, encoder: Encoder, settings: Settings, store: Store, threads: int) -> "EncoderSpec":
        model = encoder.name
        heads = config = None
        weights = getattr(encoder, "weights_path", None)
        shipped = lite_weights("lite")
        if lite_weights(model) is not None and weights is not None and Path(weights).resolve() != shipped:
            heads = Path(weights).read_bytes()
            config = Path(weights).with_suffix(".json").read_text(encoding="utf-8")
            model = "lite"
        checkpoint = settings.checkpoint
        if checkpoint is None and store.get_meta("base_model") == model and store.get_meta("base_checkpoint"):
            checkpoint = store.get_meta("base_checkpoint")
        return cls(model, encoder.fingerprint, getattr(encoder, "feature_fingerprint", None),
                   str(checkpoint) if checkpoint else None, heads, config, settings.device, threads)


class EncodeActor:
    """One actor of the pool: opens the encoder once, then encodes batches of rows of any kind."""

    spec: EncoderSpec  # set on a subclass made per job

    def __init__(self) -> None:
        import tempfile

        import torch

        from mmtui.encoders import load_encoder

        spec = self.spec
        device = spec.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = spec.model
        if spec.heads is not None:
            folder = Path(tempfile.mkdtemp(prefix="mmtui-heads-"))
            (folder / "heads.safetensors").write_bytes(spec.heads)
            (folder / "heads.json").write_text(spec.heads_config or "{}", encoding="utf-8")
            model = f"lite:{folder / 'heads.safetensors'}"
        self.encoder = load_encoder(model, checkpoint=Path(spec.checkpoint) if spec.checkpoint else None,
                                    device=device)
        if device == "cpu":
            torch.set_num_threads(max(1, spec.threads))
        self.device = device
        # raised on the first batch, not here: an actor that fails to start is retried by Ray, a batch is not
        self.error = None if self.encoder.fingerprint == spec.fingerprint else (
            f"{MISMATCH}: the model on worker {socket.gethostname()} ({device}) has fingerprint "
            f"{self.encoder.fingerprint}, this build's is {spec.fingerprint}")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.error:
            raise RuntimeError(self.error)
        rows = [{"kind": str(k), "rowid": int(r), "sha": str(s), "value": str(v)}
                for k, r, s, v in zip(batch["kind"], batch["rowid"], batch["sha"], batch["value"])]
        out: dict[str, list] = {"kind": [], "rowid": [], "sha": [], "vector": [], "features": [], "seconds": []}
        min_side = getattr(self.encoder, "image_size", None)
        for kind in KINDS:
            part = [{**r, "image_path": r["value"], kind: r["value"]} for r in rows if r["kind"] == kind]
            if not part:
                continue
            started = time.perf_counter()
            images = decode_images(part, min_side) if kind == "image" else None
            done, vectors, features = encode_batch(self.encoder, kind, part, images, self.spec.feature_fingerprint)
            each = (time.perf_counter() - started) / max(len(done), 1)  # this actor's time, shared by the rows
            for i, row in enumerate(done):
                out["kind"].append(kind)
                out["rowid"].append(row["rowid"])
                out["sha"].append(row["sha"])
                out["vector"].append(np.asarray(vectors[i], np.float32).tobytes())
                out["features"].append(b"" if features is None else np.asarray(features[i], np.float16).tobytes())
                out["seconds"].append(each)
        return {"kind": np.array(out["kind"], dtype=object), "rowid": np.array(out["rowid"], dtype=np.int64),
                "sha": np.array(out["sha"], dtype=object), "vector": np.array(out["vector"], dtype=object),
                "features": np.array(out["features"], dtype=object),
                "seconds": np.array(out["seconds"], dtype=np.float64)}


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayError("--ray needs Ray Data (ray[data]), which is not installed", INSTALL_HINT) from exc
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address nothing listens at (ray.init would retry for minutes)."""
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1].rstrip("/")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise RayError(f"RAY_ADDRESS={address!r} is not HOST:PORT",
                       "set RAY_ADDRESS to the head node's GCS address (e.g. 10.0.0.5:6379), or unset it for a "
                       "local Ray")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayError(f"no Ray cluster answers at RAY_ADDRESS={address} ({exc.strerror or exc})",
                       "start it (ray start --head on the head node) or fix RAY_ADDRESS; unset it to encode on a "
                       "local Ray started for this build") from exc


class RayEncode:
    """Where build_index encodes when given `encode_on=RayEncode(...)`; use it as a context manager: it starts a
    local Ray (stopped on exit) or connects to RAY_ADDRESS, or uses the Ray this process already runs.

    actors: the pool size (default: one per GPU of the cluster, at most that; else one per 2 CPUs); each CPU actor
    gets an equal share of the CPUs as torch threads."""

    def __init__(self, settings: Settings, address: str | None = None, actors: int | None = None) -> None:
        self.settings = settings
        self.address = address if address is not None else (os.environ.get("RAY_ADDRESS") or None)
        self.actors = actors
        self.actor_class = EncodeActor  # what the pool runs (tests give a subclass)
        self.where = ""
        self._started = False
        self._ray = None

    def __enter__(self) -> "RayEncode":
        ray = self._ray = _import_ray()
        kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
                  "configure_logging": True}
        try:
            if ray.is_initialized():
                kind = "Ray already running in this process"
            elif self.address:
                _check_reachable(self.address)
                ray.init(address=self.address, **{k: v for k, v in kwargs.items() if k != "include_dashboard"})
                kind = f"Ray cluster at {self.address}"
            else:
                ray.init(address="local", **kwargs)
                self._started = True
                kind = "local Ray"
        except RayError:
            raise
        except Exception as exc:  # ray raises ConnectionError, RuntimeError, ... depending on what failed
            raise RayError(f"could not start or reach Ray: {_first_line(exc)}",
                           "check RAY_ADDRESS (unset it for a local Ray), or build without --ray") from exc
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.enable_operator_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.enable_auto_log_stats = False
        import logging

        for name in ("ray", "ray.data"):  # Ray Data logs each run's start, end and settings at INFO / WARNING
            logging.getLogger(name).setLevel(logging.ERROR)
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        cpus = max(1, int(resources.get("CPU", 1)))
        self.actors = self.actors or (self.gpus or max(1, cpus // 2))
        if self.gpus:  # one GPU each: a larger pool would wait for GPUs that do not exist
            self.actors = min(self.actors, self.gpus)
        self.cpus_per_actor = max(1, cpus // self.actors) if not self.gpus else max(1, cpus // max(self.gpus, 1))
        # what each CPU actor reserves: its threads, but never the whole cluster (a pool holding every CPU can
        # starve the small tasks Ray Data itself needs: a job that never starts)
        self.cpu_reservation = (0 if self.gpus else self.cpus_per_actor if self.actors * self.cpus_per_actor < cpus
                                else max(0.25, round((cpus - 1) / self.actors, 2)) if cpus > 1 else 0.5)
        device = "GPU" if self.gpus else "CPU"
        self.where = f"{kind}, {self.actors} {device} actor{'s' if self.actors > 1 else ''}"
        return self

    def __exit__(self, *exc) -> None:
        if self._started and self._ray is not None:
            self._ray.shutdown()
            self._started = False

    def encode_missing(self, store: Store, encoder: Encoder, progress: ProgressCallback,
                       cancel: threading.Event | None, batch_size: int) -> tuple[int, float, int, float]:
        """Encode what has no vector (all kinds in one pass of the pool) and write it; (images, image seconds,
        texts, text seconds): the pool's wall time, shared by the actor time each kind took."""
        ray = self._ray
        todo = {kind: missing(store, encoder, kind) for kind in KINDS}
        total = sum(len(rows) for rows in todo.values())
        if not total:
            return 0, 0.0, 0, 0.0
        items = [{"kind": kind, "rowid": int(r["rowid"]), "sha": r["sha"],
                  "value": (r["image_path"] if kind == "image" else r[kind]) or ""}
                 for kind in KINDS for r in todo[kind]]
        progress(ProgressEvent("ray", 0, None, f"encoding on {self.where}"))
        for kind in KINDS:
            if todo[kind]:
                progress(ProgressEvent(STAGES[kind], 0, len(todo[kind])))
        spec = EncoderSpec.of(encoder, self.settings, store, self.cpus_per_actor)
        blocks = max(self.actors * 2, min(200, -(-total // (batch_size * 4))))
        with warnings.catch_warnings():  # ray_remote_args_fn is deprecated after 2.60 (pinned): no named option yet
            warnings.simplefilter("ignore")
            ds = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
                # the spec rides on the class, not as a constructor argument (those live in the object store)
                type("EncodeActor", (self.actor_class,), {"spec": spec}), batch_size=batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=self.actors), num_gpus=1 if self.gpus else 0,
                num_cpus=self.cpu_reservation, ray_remote_args_fn=_no_restarts)
        done = dict.fromkeys(KINDS, 0)
        busy = dict.fromkeys(KINDS, 0.0)  # actor seconds spent on each kind
        started = time.perf_counter()
        batches = iter(ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2))
        try:
            while True:
                check_cancel(cancel)
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except Exception as exc:  # an actor's error arrives wrapped by Ray
                    raise _job_error(exc) from exc
                self._write(store, spec, batch, done, busy, todo, progress)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        # the pool's wall time (from its start: actors loading the model included, as a local build's first batch
        # includes loading it), shared between images and texts by the actor time each took
        wall = time.perf_counter() - started
        image_share = busy["image"] / (sum(busy.values()) or 1.0)
        return done["image"], wall * image_share, done["title"] + done["text"], wall * (1.0 - image_share)

    @staticmethod
    def _write(store: Store, spec: EncoderSpec, batch: dict, done: dict, busy: dict, todo: dict,
               progress: ProgressCallback) -> None:
        kinds = batch["kind"]
        for kind in KINDS:
            idx = [i for i, k in enumerate(kinds) if k == kind]
            if not idx:
                continue
            rows = [{"rowid": int(batch["rowid"][i]), "sha": str(batch["sha"][i])} for i in idx]
            vectors = np.stack([np.frombuffer(batch["vector"][i], np.float32) for i in idx])
            features = (np.stack([np.frombuffer(batch["features"][i], np.float16) for i in idx])
                        if spec.feature_fingerprint else None)
            write_encoded(store, spec.fingerprint, spec.feature_fingerprint, kind, rows, vectors, features)
            done[kind] += len(rows)
            busy[kind] += float(np.sum(batch["seconds"][idx]))
            progress(ProgressEvent(STAGES[kind], done[kind], len(todo[kind])))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _job_error(exc: BaseException) -> MmtuiError:
    """The error of a failed job, from the worker's traceback Ray passes on (the first exception not Ray's own)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    if MISMATCH in text:
        detail = text[text.index(MISMATCH) + len(MISMATCH) + 2:].splitlines()[0]
        return RayError(f"the Ray workers' model differs from this machine's: {detail}",
                        "install the same mmtui version on every node, and give the same --device / --checkpoint; a "
                        "GPU worker and a CPU driver that runs the image tower in bf16 differ: build on one kind")
    causes = re.findall(r"^(?!ray\.)[A-Za-z_][\w.]*(?:Error|Exception|Exit): .*$", text, re.M)
    detail = causes[0] if causes else _first_line(exc)
    return RayError(f"the encode job failed on Ray: {detail}",
                    "every batch encoded before the failure is saved; fix the cause and run the same command "
                    "again: it encodes only what is missing")


def _no_restarts() -> dict:
    """An actor that dies fails the job (a re-run finishes it) rather than being restarted with its batch."""
    return {"max_restarts": 0}
