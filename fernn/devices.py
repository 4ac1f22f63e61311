"""Device names, checked and resolved in one place for every layer (models, envs, runs, the CLI).

Accepted names: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` and ``cuda:N``. A name that asks
for CUDA on a machine without it, or for a CUDA index it does not have, is a :class:`ValueError` naming the
device and what the machine has, before anything is allocated.
"""

from __future__ import annotations

import os
import platform
import re

import torch

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"


def check_device_name(value: object, name: str = "device", *, allow_auto: bool = True) -> str:
    """``value`` if it spells a device (see the module docstring), else a ``ValueError`` naming ``name``."""
    accepted = DEVICE_NAMES if allow_auto else "cpu, cuda or cuda:N"
    if isinstance(value, torch.device):
        value = str(value)
    if not isinstance(value, str) or not (re.fullmatch(r"cpu|cuda(:\d+)?", value) or (allow_auto and value == "auto")):
        raise ValueError(f"{name} must be {accepted}; got {value!r}")
    return value


def resolve_device(value: str | torch.device, local_rank: int = 0, name: str = "device") -> torch.device:
    """The ``torch.device`` a name stands for: ``auto`` is ``cuda:<local_rank>`` when CUDA is present, else ``cpu``.

    Raises:
        ValueError: a misspelt name, CUDA asked for without CUDA, or a CUDA index the machine does not have.
    """
    value = check_device_name(value, name)
    if value == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(value)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {value!r} asked for CUDA, but torch {torch.__version__} sees no CUDA device; "
                             "use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{name} {value!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def describe_machine(device: str | torch.device = "cpu") -> dict[str, object]:
    """What a measurement ran on, for the results that record it: the device's name, the CPU, its cores, torch's
    threads and version."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return {"device": name, "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}
