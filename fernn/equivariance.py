"""A public, quiet, offline check of flow equivariance for any module on any flow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from fernn._validation import check_float_tensor, check_int
from fernn.flows import Flow


@dataclass(frozen=True)
class EquivarianceReport:
    """Errors of ``f(x') `` against the flowed ``f(x)``, per output time step.

    Attributes:
        abs_error: ``(T_out,)`` max absolute error at each output step (over the compared entries).
        rel_error: ``(T_out,)`` ``abs_error / scale``.
        scale: ``max |f(x)|`` over the whole output, the yardstick of ``rel_error``.
        compared_channels: velocity channels compared (those with ``v - nu`` in the grid); ``None`` for
            outputs without a velocity axis.
    """

    abs_error: torch.Tensor
    rel_error: torch.Tensor
    scale: float
    compared_channels: int | None

    @property
    def max_abs(self) -> float:
        return float(self.abs_error.max())

    @property
    def max_rel(self) -> float:
        return float(self.rel_error.max())


def check_equivariance(module: Callable[[torch.Tensor], Any], flow: Flow, nu: Any, x: torch.Tensor, *,
                       time_offset: int = 0) -> EquivarianceReport:
    """Measure how far ``module`` is from flow equivariance for the flow element ``nu``.

    The input is flowed as ``x'_t = S_{nu t} x_t`` (``t = 0 .. T-1``). The output ``y = module(x)`` is
    compared according to its rank:

    * ``(B, T_out, V, C, H, W)`` hidden states: ``y'_t[v]`` against ``S_{nu s} y_t[v - nu]`` for the
      channels ``v`` with ``v - nu`` in the flow's grid;
    * ``(B, T_out, C, H, W)`` frames (e.g. predictions): ``y'_t`` against ``S_{nu s} y_t``;
    * ``(B, K)`` invariant outputs (e.g. logits): ``y'`` against ``y``;

    with ``s = t + time_offset`` the flow time of output step ``t`` (``time_offset = T_context`` for
    frames predicted after a context of ``T_context`` frames). Tuples are reduced to their first element.

    Args:
        module: any callable on ``(B, T, C, H, W)`` float tensors (an ``nn.Module``, a lambda).
        flow: the flow whose element ``nu`` is applied.
        nu: a flow element (``(vx, vy)`` for translation, degrees per step for rotation).
        x: input ``(B, T, C, H, W)``, float32 or float64.
        time_offset: flow time of the first output step.

    Returns:
        An :class:`EquivarianceReport`; nothing is printed.
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a fernn Flow, got {type(flow).__name__}")
    check_float_tensor("x", x, ndim=5, layout="(B, T, C, H, W)")
    time_offset = check_int("time_offset", time_offset)
    steps = torch.arange(x.shape[1])
    with torch.no_grad():
        y = _first(module(x))
        y_moved = _first(module(flow.act_on_frames(x, nu, steps)))
    if y.shape != y_moved.shape:
        raise ValueError(f"module returned shapes {tuple(y.shape)} and {tuple(y_moved.shape)} for x and x'")
    scale = float(y.abs().max().clamp_min(torch.finfo(y.dtype).tiny))
    compared = None
    if y.dim() == 6:
        if y.shape[2] != flow.num_velocities:
            raise ValueError(f"the module's output has {y.shape[2]} velocity channels (dim 2 of {tuple(y.shape)}) "
                             f"but the flow has {flow.num_velocities}; pass the flow the module was built with")
        times = torch.arange(y.shape[1]) + time_offset
        expected, valid = flow.act_on_hidden(y, nu, times)
        diff = (y_moved - expected)[:, :, valid.to(y.device)]
        compared = int(valid.sum())
        if compared == 0:
            raise ValueError(f"no velocity channel v has v - nu in the grid for nu={nu!r}; pick a smaller nu")
    elif y.dim() == 5:
        expected = flow.act_on_frames(y, nu, torch.arange(y.shape[1]) + time_offset)
        diff = y_moved - expected
    elif y.dim() == 2:
        diff = (y_moved - y)[:, None]
    else:
        raise ValueError("module output must be (B, T, V, C, H, W) hidden states, (B, T, C, H, W) frames or "
                         f"(B, K) invariants; got shape {tuple(y.shape)}")
    abs_error = diff.abs().transpose(0, 1).reshape(diff.shape[1], -1).amax(1).float().cpu()
    return EquivarianceReport(abs_error=abs_error, rel_error=abs_error / scale, scale=scale,
                              compared_channels=compared)


def default_elements(flow: Flow) -> list[Any]:
    """The flow elements next to zero that :func:`equivariance_error` measures by default: a translation flow's
    velocities with ``|nu|_inf = 1``, a rotation flow's nonzero angular velocities of the smallest magnitude
    (empty for a flow with no such element)."""
    velocities = getattr(flow, "velocities", None)
    if velocities is not None:
        return [tuple(v) for v in velocities.tolist() if max(abs(c) for c in v) == 1]
    angles = [float(w) for w in getattr(flow, "angular_velocities", torch.zeros(0)).tolist() if w != 0]
    smallest = min((abs(w) for w in angles), default=None)
    return [w for w in angles if abs(w) == smallest]


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def equivariance_error(module: Callable[[torch.Tensor], Any], flow: Flow, x: torch.Tensor,
                       nus: Any = None) -> float:
    """The relative equivariance error of ``module``'s hidden states on the inputs ``x``, averaged over flow elements.

    For each element ``nu``, with ``y = module(x)`` and ``y' = module(x')`` on the flowed input
    ``x'_t = S_{nu t} x_t``: ``||y' - g_nu y|| / ||g_nu y||`` (Frobenius norms over the batch, the time steps and
    the velocity channels ``v`` with ``v - nu`` in the grid), where ``g_nu y`` is the law
    ``(g_nu y)_t[v] = S_{nu t} y_t[v - nu]`` of :func:`check_equivariance`. Zero (to float tolerance) for a
    FERNN, for a relaxed FERNN at initialisation, and for one whose combination weights training left equal;
    it grows as training relaxes the weight sharing. The measure of the equivariance error of a learned model in
    Wang, Walters and Yu (ICML 2022), on the recurrent state.

    Args:
        module: a callable on ``(B, T, C, H, W)`` returning hidden states ``(B, T, V, C, H, W)`` (e.g. a
            :class:`fernn.FERNN`, or a model's ``rnn``).
        flow: the flow the module was built with (a translation flow with more than one velocity).
        x: ``(B, T, C, H, W)`` float inputs (one batch of a data set; average the results over batches).
        nus: the flow elements (default :func:`default_elements`: the flow's elements next to zero).

    Returns:
        The mean over ``nus`` of the relative error (a float).
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a fernn Flow, got {type(flow).__name__}")
    check_float_tensor("x", x, ndim=5, layout="(B, T, C, H, W)")
    nus = default_elements(flow) if nus is None else list(nus)
    if not nus:
        raise ValueError("the flow has no element next to zero (a translation with |nu|_inf = 1, a rotation's smallest "
                         "nonzero angle): its hidden states have no velocity channel to relabel")
    steps = torch.arange(x.shape[1])
    errors = []
    with torch.no_grad():
        y = _first(module(x))
        if y.dim() != 6:
            raise ValueError(f"module must return hidden states (B, T, V, C, H, W); got shape {tuple(y.shape)}")
        for nu in nus:
            nu = flow.element(nu)
            y_moved = _first(module(flow.act_on_frames(x, nu, steps)))
            expected, valid = flow.act_on_hidden(y, nu, steps)
            valid = valid.to(y.device)
            difference = (y_moved - expected)[:, :, valid].double().norm()
            scale = expected[:, :, valid].double().norm().clamp_min(torch.finfo(torch.float64).tiny)
            errors.append(float(difference / scale))
    return sum(errors) / len(errors)


def equivariance_summary(rnn: Any, x: torch.Tensor) -> dict[str, Any]:
    """A FERNN layer's equivariance on inputs ``x (B, T, C, H, W)``, JSON-ready: ``relative_error``
    (:func:`equivariance_error` over :func:`default_elements`), the ``elements`` measured, ``relaxed`` (its filter
    banks, 0 for exact sharing) and, for a relaxed recurrence, its ``combination_weights (V, L)`` and
    ``relaxation_penalty``."""
    from fernn.relaxed import combination_weights, relaxation_penalty

    elements = default_elements(rnn.flow)
    summary = {"relative_error": equivariance_error(rnn, rnn.flow, x, elements),
               "elements": [list(nu) if isinstance(nu, tuple) else nu for nu in elements], "relaxed": rnn.relaxed}
    if rnn.relaxed:
        summary["combination_weights"] = combination_weights(rnn)[0].numpy().round(6).tolist()
        summary["relaxation_penalty"] = float(relaxation_penalty(rnn))
    return summary
