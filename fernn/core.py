"""The contract between a flow and FERNN's time loop: :class:`RecurrentCore`, and :class:`Feedback`.

Every flow builds one core (:meth:`fernn.Flow.build_core`); :class:`fernn.FERNN` runs it with one time
loop (:meth:`fernn.FERNN.scan`) that every model of the package uses: the plain FERNN, the next-frame
predictor, the world model, the SB3 policy core and the planner's imagination. One step is::

    moved = core.transport(h, offsets)          # S_offset S_v h[v] for every velocity channel v
    h     = core.recur(moved, core.drive(x))    # act(conv_rec(moved) + conv_in(x))

A new flow is one new core; every model then takes it.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from fernn.fused import ACTIVATIONS, velocity_view


class RecurrentCore(nn.Module, abc.ABC):
    """What a flow's recurrent core provides (the way escnn's ``EquivariantModule`` is a contract).

    Layouts: the *public* state is ``(B, V, C, H, W)``; the *internal* state, which the methods below take
    and return, is ``(B, V, H, W, C)`` contiguous (channels-last maps, which the CPU and cuDNN convolutions
    prefer). :meth:`states_to_public` returns views, so a public state handed back to the core costs no copy.

    Attributes:
        num_velocities: V, the number of velocity channels.
        state_channels: C, the channels of one velocity channel's state.
        pad: the halo :meth:`transport` adds around every map (its recurrent convolution pads nothing then);
            0 when the recurrent convolution pads itself.
        supports_offsets: whether :meth:`transport` takes per-sample extra translations (self-motion).
        activation_name: ``"relu"`` or ``"tanh"``.
    """

    num_velocities: int
    state_channels: int
    pad: int = 0
    supports_offsets: bool = False
    activation_name: str = "relu"

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """The nonlinearity ``act``, out of place."""
        return ACTIVATIONS[self.activation_name](x)

    @abc.abstractmethod
    def weights(self) -> Any:
        """Per-sequence weight preparation, computed once and passed to :meth:`drive` and :meth:`recur`
        (``None`` for plain convolutions; escnn cores expand their filters here)."""

    @abc.abstractmethod
    def drive(self, x: torch.Tensor, weights: Any) -> torch.Tensor:
        """The input term ``conv_in(x)``: frames ``(N, C_in, H, W)`` -> channels-last ``(N, H, W, C)``."""

    @abc.abstractmethod
    def transport(self, h: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """Move every velocity channel of the internal state ``h (B, V, H, W, C)`` one step by its flow.

        Args:
            h: internal state.
            offsets: optional integer ``(B, 2)`` extra translation ``(sx, sy)`` per batch item, applied to every
                velocity channel (self-motion: minus the agent's move). Cores with ``supports_offsets = False``
                raise ``ValueError`` naming their flow.

        Returns:
            ``(B * V, C, H + 2 pad, W + 2 pad)`` maps (velocity-minor), the input of :meth:`recur`.
        """

    @abc.abstractmethod
    def recur(self, transported: torch.Tensor, drive: torch.Tensor, weights: Any) -> torch.Tensor:
        """``act(conv_rec(transported) + drive)``: the new internal state ``(B, V, H, W, C)``.

        Args:
            transported: the output of :meth:`transport`; it is overwritten (a fresh tensor nothing else reads).
            drive: ``(B, H, W, C)``, shared by all velocity channels.
            weights: :meth:`weights`.
        """

    def advected(self, transported: torch.Tensor, batch: int, *, padded: bool = False) -> torch.Tensor:
        """``S_v h[v]`` inside a :meth:`transport` output as ``(B, V, H, W, C)`` (a view), or the padded maps
        ``(B, V, H + 2 pad, W + 2 pad, C)`` with ``padded`` (the unpadded ones start at ``(pad, pad)``)."""
        moved = self.moved_maps(transported, batch)
        p = self.pad
        if padded or p == 0:
            return moved
        return moved[:, :, p:moved.shape[2] - p, p:moved.shape[3] - p]

    def moved_maps(self, transported: torch.Tensor, batch: int) -> torch.Tensor:
        """A :meth:`transport` output as padded maps ``(B, V, H + 2 pad, W + 2 pad, C)`` (a view); cores whose
        transport writes another layout override it."""
        return velocity_view(transported, batch)

    def reject_offsets(self, flow: object) -> None:
        """Raise the error of a core that cannot take per-sample offsets."""
        raise ValueError(f"{flow!r} cannot move its state by per-sample offsets (self-motion translates the state "
                         "on a torus); self-motion needs a fernn.TranslationFlow")

    @staticmethod
    def state_from_public(state: torch.Tensor) -> torch.Tensor:
        """Public ``(B, V, C, H, W)`` -> internal ``(B, V, H, W, C)`` (no copy when ``state`` came from
        :meth:`states_to_public`)."""
        return state.permute(0, 1, 3, 4, 2).contiguous()

    @staticmethod
    def states_to_public(states: torch.Tensor) -> torch.Tensor:
        """Internal ``(..., V, H, W, C)`` -> public ``(..., V, C, H, W)`` (a view)."""
        return states.movedim(-1, -3)


class Feedback:
    """What a free-running model feeds back as its next input: its own prediction or, with teacher
    forcing, the true frame. Written once for the predictor, the world model and the planner.

    Args:
        targets: ``(B, K, ...)`` true future frames (``targets[:, k]`` replaces prediction ``k``); needed when
            ``teacher_forcing > 0``.
        teacher_forcing: probability, drawn per step from torch's global RNG, of feeding the true frame.
        detach: stop gradients through fed-back predictions.
        clip: clip fed-back predictions to this range (``None``: don't). Pointwise, so it commutes with every
            flow; without it, out-of-range predictions fed back can blow a free-running rollout up far beyond
            the trained horizon.
    """

    def __init__(self, targets: torch.Tensor | None = None, teacher_forcing: float = 0.0, *, detach: bool = True,
                 clip: tuple[float, float] | None = (0.0, 1.0)) -> None:
        teacher_forcing = float(teacher_forcing)
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be a probability in [0, 1], got {teacher_forcing}")
        if teacher_forcing > 0 and targets is None:
            raise ValueError("teacher_forcing > 0 needs targets: the true future frames (B, K, ...)")
        if clip is not None and not (len(clip) == 2 and float(clip[0]) <= float(clip[1])):
            raise ValueError(f"feedback_range must be None or a pair (low, high) with low <= high, got {clip!r}")
        self.targets, self.teacher_forcing, self.detach, self.clip = targets, teacher_forcing, detach, clip

    def check_targets(self, expected: tuple[int, ...]) -> None:
        """Raise unless the targets (when teacher forcing uses them) have shape ``expected``."""
        if self.teacher_forcing > 0 and tuple(self.targets.shape) != tuple(expected):
            raise ValueError(f"targets must have shape {tuple(expected)}, got {tuple(self.targets.shape)}")

    def __call__(self, prediction: torch.Tensor, k: int) -> torch.Tensor:
        """The input that follows prediction ``k``."""
        if self.teacher_forcing > 0 and float(torch.rand(())) < self.teacher_forcing:
            return self.targets[:, k]
        fed = prediction.detach() if self.detach else prediction
        return fed if self.clip is None else fed.clamp(*self.clip)
