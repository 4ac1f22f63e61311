"""Argument checks shared by the public constructors and forwards.

Every check raises ``ValueError``/``TypeError`` naming the argument, the value it got and what is
accepted, so that bad input never surfaces as an error from deep inside torch.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int`` or raise if it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_finite_float(name: str, value: Any) -> float:
    """Return ``value`` as a finite ``float`` or raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_float_tensor(name: str, x: Any, *, ndim: int, layout: str) -> torch.Tensor:
    """Raise unless ``x`` is a floating-point tensor with ``ndim`` dimensions (``layout`` names them)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (e.g. float32), got dtype {x.dtype}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must have shape {layout} ({ndim} dims), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)} (layout {layout})")
    return x


def check_channels(name: str, x: torch.Tensor, dim: int, expected: int, layout: str) -> None:
    """Raise unless ``x.shape[dim] == expected``."""
    if x.shape[dim] != expected:
        raise ValueError(
            f"{name} has {x.shape[dim]} channels in dim {dim} of shape {tuple(x.shape)} ({layout}), "
            f"but the module was built for {expected}"
        )


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s first parameter or buffer (CPU for a module with neither)."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def check_module_tensor(name: str, x: torch.Tensor, module: torch.nn.Module) -> None:
    """Raise unless ``x`` is on ``module``'s device and, outside autocast, of its floating-point dtype."""
    parameter = next(module.parameters(), None)
    if parameter is None:
        return
    if x.device != parameter.device:
        raise ValueError(f"{name} is on {x.device} but the module's parameters are on {parameter.device}; "
                         f"move one of them (x.to({str(parameter.device)!r}) or module.to({str(x.device)!r}))")
    if x.dtype != parameter.dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"{name} has dtype {x.dtype} but the module's parameters are {parameter.dtype}; convert one "
                        f"of them (x.to({parameter.dtype}) or module.to({x.dtype})), or run under torch.autocast")



def check_views(obs: Any, channels: int, view_size: int) -> torch.Tensor:
    """First-person views ``(B, T, channels, view_size, view_size)``, floating point."""
    layout = "(B, T, C, view, view)"
    check_float_tensor("obs", obs, ndim=5, layout=layout)
    if tuple(obs.shape[2:]) != (channels, view_size, view_size):
        raise ValueError(f"obs must be views {layout} = (B, T, {channels}, {view_size}, {view_size}); got "
                         f"{tuple(obs.shape)}: a world model plans and predicts in the view size, channels and room "
                         "it was built for")
    return obs


def check_action_sequence(name: str, actions: Any, batch: int, unit: str, steps: int | None = None) -> torch.Tensor:
    """``actions`` as a ``(B, T >= 1)`` tensor of one ``unit`` (an action id, a motion) per step — per view of a
    sequence of ``steps`` views when given; its values are the caller's to check."""
    if not isinstance(actions, torch.Tensor) or actions.dim() != 2 or actions.shape[0] != batch \
            or actions.shape[1] == 0:
        got = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
        raise ValueError(f"{name} must be an integer tensor (B, T) = ({batch}, T >= 1) of {unit}s, got {got}")
    if steps is not None and actions.shape[1] != steps:
        raise ValueError(f"{name} must hold one {unit} per view: shape ({batch}, {steps}), got {tuple(actions.shape)}")
    return actions
