"""A run directory and its files, every one written atomically (temporary file + rename)::

    runs/<name>/config.json            everything needed to rerun (TrainConfig)
    runs/<name>/metrics.csv            one row per log interval and per validation
    runs/<name>/tensorboard/           TensorBoard event files
    runs/<name>/checkpoints/last.pt    model, optimizer, RNG states, step (resume)
    runs/<name>/checkpoints/best.pt    the best validation checkpoint
    runs/<name>/results.json, *.png, *.gif   evaluations
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from fernn.envs.storage import atomic_write
from fernn.agents.config import TrainConfig


class RunExistsError(FileExistsError):
    """The run directory already holds a run and neither ``resume`` nor ``overwrite`` was asked for."""


def write_json(path: Path, payload: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, default=_jsonable)))


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


class RunDir:
    """Paths and atomic file operations of one run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def prepare(self, config: TrainConfig, *, resume: bool, overwrite: bool) -> TrainConfig:
        """Create (or reuse, or wipe) the directory; return the config to run with.

        Resuming keeps the stored config (``epochs`` may be raised to train longer)."""
        if self.exists():
            if resume:
                stored = TrainConfig.from_dict(json.loads(self.config_path.read_text()))
                if config.epochs > stored.epochs:
                    stored = stored.replace(epochs=config.epochs)
                    write_json(self.config_path, stored.to_dict())
                return stored
            if not overwrite:
                raise RunExistsError(f"run directory {self.path} already holds a run; pass --resume to continue it "
                                     "or --overwrite to start over")
            shutil.rmtree(self.path)
        elif resume:
            raise FileNotFoundError(f"cannot resume: {self.config_path} does not exist (start the run without --resume)")
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config_path, config.to_dict())
        return config

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics_path.is_file():
            return []
        with open(self.metrics_path, newline="") as fh:
            return list(csv.DictReader(fh))

    def write_metrics(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        """Rewrite ``metrics.csv`` with ``rows`` (atomically: a crash never leaves half a file)."""
        write_csv(self.metrics_path, rows, columns)

    def save_checkpoint(self, name: str, payload: dict[str, Any]) -> Path:
        path = self.checkpoints / name
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
        return path

    def load_checkpoint(self, name: str = "last.pt", map_location: str | torch.device = "cpu") -> dict[str, Any]:
        path = self.checkpoints / name
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint {path}; train the run first")
        return torch.load(path, map_location=map_location, weights_only=False)

    def config(self) -> TrainConfig:
        if not self.exists():
            raise FileNotFoundError(f"{self.path} is not a run directory (no config.json)")
        return TrainConfig.from_dict(json.loads(self.config_path.read_text()))
