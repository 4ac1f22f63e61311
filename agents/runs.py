"""The run directory every kind of run uses (supervised, RL): its lifecycle, its lock and its files, each
written atomically (temporary file + rename)::

    runs/<name>/run.json               the run's kind ("supervised" | "rl" | "dream") and format version
    runs/<name>/config.json            everything needed to rerun (TrainConfig or RLConfig, as plain data)
    runs/<name>/metrics.csv, eval.csv  one row per log interval / evaluation
    runs/<name>/tensorboard/           TensorBoard event files
    runs/<name>/checkpoints/           last.pt / best.pt (supervised), last.zip (RL)
    runs/<name>/results.json, *.png, *.gif   evaluations
    runs/.<name>.lock                  held (``flock``) by the process that trains the run

Lifecycle (:func:`open_run`): take the lock, check the request against what is on disk (resume, overwrite,
changed settings), run the caller's setup (data found, model built), and only then create or wipe the
directory, so a failed start leaves nothing behind and its retry gets the same error. The lock is an
``fcntl.flock`` on a file beside the directory: the kernel releases it when the process exits, however it
exits, so a lock is never stale; a second process gets :class:`RunLockedError`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pickle
import re
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

from fernn.errors import FERNNError
from fernn.io import atomic_write

KINDS = ("supervised", "rl", "dream")
LOCATION_FIELDS = ("out", "name")
RUN_FORMAT = 1
EVAL_SEED = 50_000
"""The first episode seed of every evaluation (an RL policy's, a planner's): episode ``i`` is seeded
``EVAL_SEED + i``, so policies and planners evaluated on the same env meet the same episodes."""
T = TypeVar("T")


class RunExistsError(FERNNError, FileExistsError):
    """The run directory already holds a run and neither ``resume`` nor ``overwrite`` was asked for."""


class RunLockedError(FERNNError, RuntimeError):
    """Another process holds the run's lock (it is training or resuming the run)."""


class RunFileError(FERNNError, ValueError):
    """A file of a run cannot be read: missing, truncated, corrupt, or not data this project wrote."""


class NotARunError(FERNNError, FileExistsError):
    """A directory where a run would go exists and is not a run of this project (no ``run.json``): it is never
    deleted, resumed or written into."""


def write_json(path: Path, payload: Any) -> None:
    """Write strict JSON atomically: a NaN or infinite number is written as ``null`` (JSON has neither)."""
    text = json.dumps(_finite(payload), indent=2, default=_jsonable, allow_nan=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (in floats, lists, dicts, arrays) replaced by ``None``."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, (torch.Tensor,)) or hasattr(value, "tolist"):
        return _finite(value.tolist())
    return value


def read_json(path: Path) -> Any:
    """Parse a JSON file as data, or raise :class:`RunFileError` naming the file and what to do. A file reached
    through a symbolic link is refused (a run's files are its own)."""
    if Path(path).is_symlink():
        raise RunFileError(f"{path} is a symbolic link; the files of a run are read only from the run itself")
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise RunFileError(f"{path} does not exist") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunFileError(f"{path} is not valid JSON ({error}); restore it from a copy or start the run again "
                           "with --overwrite") from error


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Write ``rows`` as CSV with ``columns`` (blank where a row has no value), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda tmp: tmp.write_text(buffer.getvalue()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def env_slug(env_id: str) -> str:
    """The short lower-case name of an env id in default run and folder names: ``fernn.envs:MNISTWorldTrack-v0`` ->
    ``mnistworldtrack``."""
    return env_id.split(":")[-1].split("-v")[0].lower()


def run_path(out: str | os.PathLike, name: str) -> Path:
    """``<out>/<name>``, or ``ValueError`` unless ``name`` is a relative path that stays inside ``out`` (no
    absolute path, no ``..`` or empty component: ``demo/grnn`` is fine, ``../x`` is not; and no component of the
    name a symbolic link, which could lead out of ``out``)."""
    parts = name.replace("\\", "/").split("/") if isinstance(name, str) else None
    if not parts or "\x00" in name or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"run name must be a relative directory name inside --out (no '..', no leading '/'), got "
                         f"{name!r}; the run is written to <out>/<name>")
    path = Path(out)
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise ValueError(f"run name {name!r}: {path} is a symbolic link; a run is written only inside --out, "
                             "never through a link")
    return path


def check_inputs_outside(run_dir: str | os.PathLike, inputs: dict[str, str | os.PathLike | None]) -> None:
    """Refuse a run directory that is, or holds, one of the run's inputs (``{"--world-model": path, ...}``; ``None``
    entries skipped): creating or starting over that run would write into or delete what it reads. Paths are
    compared resolved, so another spelling of the same place is caught."""
    target = Path(run_dir).resolve()
    for flag, source in inputs.items():
        if source is None:
            continue
        where = Path(source).resolve()
        if where == target or target in where.parents:
            raise ValueError(f"--out/--name resolve to {target}, which {'is' if where == target else 'holds'} the "
                             f"{flag} {source} this run reads: a run never writes into (or, with --overwrite, "
                             "deletes) its own inputs; choose another --name or --out")


class RunDir:
    """Paths and file operations of one run."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def info_path(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def lock_path(self) -> Path:
        """The lock beside the directory, by its resolved path: two processes reaching one run through different
        paths take the same lock."""
        resolved = self.path.resolve()
        return resolved.parent / f".{resolved.name}.lock"

    def exists(self) -> bool:
        """Whether the directory holds a run of this project (``run.json``, ``config.json``)."""
        return self.info_path.is_file() and self.config_path.is_file()

    def check_is_ours(self) -> None:
        """Raise :class:`NotARunError` when the directory exists, is not empty and is not a run of this project:
        such a directory is never deleted, resumed or written into."""
        if self.path.is_symlink():
            raise NotARunError(f"{self.path} is a symbolic link; a run directory is never reached through a link "
                               "(choose another --name or --out)")
        if self.path.exists() and not self.path.is_dir():
            raise NotARunError(f"{self.path} is a file, not a run directory; choose another --name or --out")
        if self.path.is_dir() and any(self.path.iterdir()) and not self.info_path.is_file():
            raise NotARunError(f"{self.path} exists and is not a run of fernn-rl (it has no run.json); it is never "
                               "deleted or written into: choose another --name or --out")

    def read_config(self) -> dict[str, Any]:
        """``config.json`` as a dict, or a clear error when the directory is no run or the file is damaged."""
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a run directory (no config.json)")
        config = read_json(self.config_path)
        if not isinstance(config, dict):
            raise RunFileError(f"{self.config_path} must hold a JSON object of settings, got {type(config).__name__}")
        return config

    def kind(self) -> str:
        """The recorded kind of run (``run.json``); runs written before it existed are told apart by their
        config (RL configs have ``algo``)."""
        if self.info_path.is_file():
            info = read_json(self.info_path)
            kind = info.get("kind") if isinstance(info, dict) else None
            if kind not in KINDS:
                raise RunFileError(f"{self.info_path} names an unknown run kind {kind!r}; accepted: {', '.join(KINDS)}")
            return kind
        return "rl" if "algo" in self.read_config() else "supervised"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's exclusive lock, or raise :class:`RunLockedError` at once if another process holds it."""
        import fcntl

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                raise RunLockedError(f"run {self.path} is in use by {owner}; wait for it to finish (or stop it) "
                                     "before resuming or overwriting it") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()}")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                if not self.path.exists():  # a start that failed leaves nothing behind, its lock file included
                    self.lock_path.unlink(missing_ok=True)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def resolve(self, config: dict[str, Any], *, resume: bool, overwrite: bool, explicit: Iterable[str] = (),
                extend: str | None = None) -> dict[str, Any]:
        """The config to run with, checked against the directory; writes nothing.

        Args:
            config: the requested settings.
            resume: continue the stored run: its stored settings are used. Settings named in ``explicit``
                (given on the command line) that differ from the stored ones are refused, except ``extend``
                (``epochs``/``timesteps``), which may be raised to train longer.
            overwrite: the run will be started over (the directory is wiped by :meth:`create`).
        """
        if resume and overwrite:
            raise ValueError("--resume and --overwrite contradict each other: resume continues the stored run, "
                             "overwrite deletes it; pass one")
        self.check_is_ours()
        if not self.exists():
            if resume:
                raise FileNotFoundError(f"cannot resume: {self.config_path} does not exist (start the run without "
                                        "--resume)")
            return config
        if not resume:
            if not overwrite:
                raise RunExistsError(f"run directory {self.path} already holds a run; pass --resume to continue it "
                                     "or --overwrite to start over")
            return config
        # where the run lives is not one of its settings: a copied or moved run resumes where it now is
        stored = {**self.read_config(), **{k: config[k] for k in LOCATION_FIELDS if k in config}}
        differ = sorted(k for k in set(explicit) if k != extend and k in config and stored.get(k) != config[k])
        if differ:
            details = ", ".join(f"{k}={stored.get(k)!r} (asked {config[k]!r})" for k in differ)
            raise ValueError(f"--resume continues {self.path} with its stored settings, which differ from the ones "
                             f"given: {details}; drop those flags, or start a new run (another --name, or --overwrite)")
        if extend is not None and extend in set(explicit) and config.get(extend, 0) > stored.get(extend, 0):
            stored = {**stored, extend: config[extend]}  # only a typed --epochs / --timesteps trains longer
        return stored

    def create(self, config: dict[str, Any], kind: str, *, overwrite: bool) -> None:
        """Write the run's files (after setup succeeded): wipe the directory first with ``overwrite``."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        self.check_is_ours()  # never delete or write into a directory that is not one of our runs
        if overwrite and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.info_path, {"kind": kind, "format": RUN_FORMAT})
        write_json(self.config_path, config)

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics_path.is_file():
            return []
        with open(self.metrics_path, newline="") as fh:
            return list(csv.DictReader(fh))

    def write_metrics(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        """Rewrite ``metrics.csv`` with ``rows`` (atomically: a crash never leaves half a file)."""
        write_csv(self.metrics_path, rows, columns)

    def merge_results(self, results: dict[str, Any]) -> None:
        """Lay ``results`` over the run's ``results.json`` (a damaged one is one clear error, never overwritten). The
        ``files`` lists are joined: a file an earlier evaluation wrote stays listed while it is in the run directory."""
        path = self.path / "results.json"
        merged = read_json(path) if path.exists() else {}
        if not isinstance(merged, dict):
            raise RunFileError(f"{path} must hold a JSON object of results, got {type(merged).__name__}")
        earlier = merged.get("files") if isinstance(merged.get("files"), list) else []
        merged.update(results)
        if "files" in results:
            kept = [f for f in earlier if isinstance(f, str) and not Path(f).is_absolute() and ".." not in Path(f).parts
                    and (self.path / f).is_file()]
            merged["files"] = list(dict.fromkeys([*kept, *results["files"]]))
        write_json(path, merged)

    def save_checkpoint(self, name: str, payload: dict[str, Any]) -> Path:
        """Save ``payload`` (tensors, numbers, strings and plain containers only) atomically."""
        path = self.checkpoints / name
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
        return path

    def load_checkpoint(self, name: str = "last.pt", map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """Load a checkpoint as data (``weights_only=True``: tensors, numbers, strings, containers): a file that
        would run code when unpickled is refused, never executed."""
        return load_checkpoint(self.checkpoints / name, map_location)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """:meth:`RunDir.load_checkpoint` for any path; :class:`RunFileError` names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint {path}; train the run first")
    if path.stat().st_size == 0:
        raise RunFileError(f"{path} is empty (0 bytes: a write that never finished); resume from another checkpoint or "
                           "start the run again with --overwrite")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise RunFileError(f"{path} holds objects other than tensors and plain data, which are not loaded (loading "
                           f"them could run code): {_load_reason(error)}") from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise RunFileError(f"{path} is damaged (truncated or corrupt: {_load_reason(error)}); resume from "
                           "another checkpoint or start the run again with --overwrite") from error
    if not isinstance(payload, dict):
        raise RunFileError(f"{path} is not a checkpoint of this project (a {type(payload).__name__}, not a dict)")
    return payload


def _load_reason(error: BaseException) -> str:
    """What ``torch.load`` found wrong, in one line: the global a pickle asks for, or its message without its advice to
    load with ``weights_only=False`` (never to be followed on a file one did not make), or the error's type when it
    says nothing."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    wanted = re.search(r"GLOBAL ([\w.]+)", message)
    if wanted:
        return f"it asks for the global {wanted.group(1)}"
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    kept = [line for line in lines if not any(word in line for word in ("weights_only", "trust", "Weights only"))]
    return (kept or [type(error).__name__])[0]


def open_run(run: RunDir, config: dict[str, Any], kind: str, *, resume: bool, overwrite: bool,
             setup: Callable[[dict[str, Any]], T], explicit: Iterable[str] = (),
             extend: str | None = None, stored: Callable[[T], dict[str, Any]] | None = None) -> tuple[dict[str, Any], T]:
    """The run lifecycle, under the lock the caller holds (:meth:`RunDir.lock`): resolve the config, run
    ``setup(config)`` (find data, build the model), and only then create (or wipe and create) the directory.

    ``stored(setup's result)``: the config to write, when setup completes it (sizes chosen for the data).
    Returns ``(config, setup's result)``."""
    config = run.resolve(config, resume=resume, overwrite=overwrite, explicit=explicit, extend=extend)
    prepared = setup(config)
    if stored is not None:
        config = stored(prepared)
    if resume:
        write_json(run.config_path, config)  # an extended epochs / timesteps
    else:
        run.create(config, kind, overwrite=overwrite)
    return config, prepared
