"""The flow-equivariant recurrent network (FERNN) layer, for any :class:`fernn.Flow`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from fernn._validation import check_channels, check_choice, check_float_tensor, check_int, check_module_tensor, \
    module_device
from fernn.budget import check_fits
from fernn.core import RecurrentCore
from fernn.flows import Flow
from fernn.relaxed import check_relaxation

RECURRENCES = ("exact", "learned")


class FERNN(nn.Module):
    """A convolutional RNN whose hidden state has one channel per velocity of ``flow``.

    Update, for every velocity ``v`` of the flow (weights shared by all ``v``)::

        h_t[v] = act(conv_in(x_t) + conv_rec(S_v h_{t-1}[v]))

    with circular padding, ``h_{-1} = 0``. For an input moving with a flow element ``nu`` of the
    grid, ``x'_t = S_{nu t} x_t``, the hidden states move with it: ``h'_t[v] = S_{nu t} h_t[v - nu]``.

    Args:
        in_channels: channels ``C_in`` of the input frames.
        hidden_channels: hidden channels per velocity channel.
        flow: the velocities (:class:`fernn.TranslationFlow`, :class:`fernn.RotationFlow`).
        kernel_size: odd size of the recurrent convolution.
        input_kernel_size: odd size of the input convolution (default: ``kernel_size``).
        activation: ``"relu"`` (the paper's next-step models) or ``"tanh"`` (its KTH classifier).
        bias: bias in the input convolution.
        recurrence: ``"exact"`` (the flow's shift: a FERNN) or ``"learned"`` (a learned depthwise
            kernel per velocity channel instead: the G-RNN+ baseline, not equivariant).
        relaxed: ``L >= 1`` makes the recurrence approximately equivariant (:mod:`fernn.relaxed`): velocity channel
            ``v`` is convolved with ``sum_l w_l(v) K_l`` over ``L`` banks, with ``w`` equal for every ``v`` at
            initialisation (exactly equivariant until training moves it); 0 (default): one shared kernel.
            Translation flows only.

    Shapes:
        ``forward(x)``: ``x (B, T, C_in, H, W)`` float -> ``h (B, T, V, C, H, W)`` in the image frame,
        velocities in the order of ``flow``; ``C = hidden_channels`` for translation flows.
    """

    def __init__(self, in_channels: int, hidden_channels: int, flow: Flow, kernel_size: int = 3, *,
                 input_kernel_size: int | None = None, activation: str = "relu", bias: bool = False,
                 recurrence: str = "exact", relaxed: int = 0) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.hidden_channels = check_int("hidden_channels", hidden_channels, minimum=1)
        if not isinstance(flow, Flow):
            raise TypeError(f"flow must be a fernn Flow (TranslationFlow, RotationFlow), got {type(flow).__name__}")
        kernel_size = _check_odd("kernel_size", kernel_size)
        input_kernel_size = _check_odd("input_kernel_size", kernel_size if input_kernel_size is None else input_kernel_size)
        check_choice("activation", activation, ("relu", "tanh"))
        check_choice("recurrence", recurrence, RECURRENCES)
        self.relaxed, _ = check_relaxation(relaxed, 0.0, flow)
        self.flow = flow
        self.recurrence = recurrence
        state = self.hidden_channels * flow.field_size
        weights = max(1, self.relaxed) * state * state * kernel_size ** 2 + self.in_channels * state * input_kernel_size ** 2
        check_fits(4 * 4 * weights, f"the convolution weights of a FERNN with {state:,} state channels "
                   "(with their gradients, optimizer moments and filter bases)",
                   "lower hidden_channels" + (" or group_order" if flow.field_size > 1 else ""))
        self.core: RecurrentCore = flow.build_core(self.in_channels, self.hidden_channels, kernel_size, input_kernel_size,
                                    activation, bool(bias), recurrence, self.relaxed)

    @property
    def num_velocities(self) -> int:
        """V, the number of velocity channels."""
        return self.core.num_velocities

    @property
    def state_channels(self) -> int:
        """Channels of one velocity channel's state (``hidden_channels``, times N for C_N rotation fields)."""
        return self.core.state_channels

    def initial_state(self, batch_size: int, height: int, width: int, *, device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The zero state ``(B, V, C, H, W)``."""
        return torch.zeros(batch_size, self.num_velocities, self.state_channels, height, width, device=device,
                           dtype=dtype)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None, *,
                return_state: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Run the recurrence over a sequence.

        Args:
            x: ``(B, T, C_in, H, W)`` float frames.
            state: optional ``(B, V, C, H, W)`` state to continue from (default: zeros).
            return_state: also return the final state, so that chunked processing equals whole.

        Returns:
            ``h (B, T, V, C, H, W)``, or ``(h, state)`` with ``state (B, V, C, H, W)``.
        """
        x = self.check_input(x)
        h = None if state is None else self.internal_state(state, x)
        weights = self.core.weights()
        states, _ = self.scan(self.drives(x, weights), h, weights)
        hidden = self.core.states_to_public(torch.stack(states, 1))
        return (hidden, hidden[:, -1]) if return_state else hidden

    def final_state(self, x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """The state after the last frame of ``x (B, T, C_in, H, W)``, ``(B, V, C, H, W)``: :meth:`forward`'s last
        state without keeping (and stacking) every step's (a classifier reads only the last)."""
        x = self.check_input(x)
        h = None if state is None else self.internal_state(state, x)
        weights = self.core.weights()
        states, _ = self.scan(self.drives(x, weights), h, weights, keep_states=False)
        return self.core.states_to_public(states[-1])

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None = None, *, offsets: torch.Tensor | None = None,
             episode_start: torch.Tensor | None = None) -> torch.Tensor:
        """One time step: ``h[v] = act(conv_in(x_t) + conv_rec(S_offset S_v h[v]))``.

        Args:
            x_t: ``(B, C_in, H, W)`` float frame.
            state: ``(B, V, C, H, W)`` state before the step (``None``: zeros).
            offsets: optional integer ``(B, 2)`` extra translation ``(sx, sy)`` of every velocity channel of item
                ``b`` (self-motion: minus the agent's move); translation flows only.
            episode_start: optional ``(B,)`` bool/0-1 tensor; items where it is set start from the zero state.

        Returns:
            The new state ``(B, V, C, H, W)`` (a channels-last view: passing it back costs no copy). Stepping
            through a sequence equals :meth:`forward` on it.
        """
        check_float_tensor("x_t", x_t, ndim=4, layout="(B, C_in, H, W)")
        x = self.check_input(x_t[:, None])
        batch = x.shape[0]
        h = None if state is None else self.internal_state(state, x)
        keep = None
        if episode_start is not None:
            keep = 1.0 - _check_batch_vector("episode_start", episode_start, batch, x).to(x.dtype)[:, None]
        if offsets is not None:
            offsets = self.check_offsets("offsets", offsets, batch)[:, None]
        weights = self.core.weights()
        states, _ = self.scan(self.drives(x, weights), h, weights, offsets=offsets, keep=keep)
        return self.core.states_to_public(states[-1])

    def drives(self, x: torch.Tensor, weights: object) -> tuple[torch.Tensor, ...]:
        """The input terms of all frames of ``x (B, T, C_in, H, W)`` in one convolution, per step:
        T tensors ``(B, H, W, C)``."""
        batch, steps = x.shape[:2]
        drives = self.core.drive(x.flatten(0, 1), weights)
        # unbind, not drives[:, t]: the backward of T selects would write T zero-filled copies of all drives
        return drives.view(batch, steps, *drives.shape[1:]).unbind(1)

    def scan(self, drives: Sequence[torch.Tensor], h: torch.Tensor | None, weights: object, *,
             steps: int | None = None, offsets: torch.Tensor | None = None, keep: torch.Tensor | None = None,
             transport: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
             decode: Callable[[torch.Tensor | None, int], torch.Tensor] | None = None,
             feedback: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
             keep_states: bool = True) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The time loop of every model in :mod:`fernn`, on the core's internal layout.

        Step ``t``: zero the state of items whose episode starts (``keep[:, t] == 0``); move it
        (``transport(h, t)``, default ``core.transport(h, offsets[:, t])``); decode a prediction from the moved
        state before the input arrives (``decode(moved, t)``, optional); then update with the input term
        ``drives[t]``, or, past the given drives, ``feedback(prediction, t)`` (free running: the model's own
        prediction fed back, see :class:`fernn.core.Feedback`). A free-running last step only predicts.

        From the zero state (``h=None``) the first step is ``act(drive)`` in every velocity channel
        (``conv_rec`` has no bias, so ``conv_rec(S_v 0) = 0`` exactly): its transport and recurrent
        convolution are skipped, bit-identically, and ``decode(None, t)`` predicts from the empty state.

        Args:
            drives: input terms ``(B, H, W, C)`` of the observed steps (:meth:`drives`).
            h: internal state ``(B, V, H, W, C)`` before the first step, or ``None`` for zeros.
            weights: ``core.weights()``, computed once per sequence.
            steps: total steps (default ``len(drives)``); steps past the drives need ``decode`` and ``feedback``.
            offsets: optional integer ``(B, steps, 2)`` self-motion offsets.
            keep: optional ``(B, steps)`` float mask, 0 where an episode starts.
            transport: replaces ``core.transport`` (models that add to the moved state).
            decode: ``(moved or None, t) -> prediction``.
            feedback: ``(prediction, t) -> drive`` of the next step.
            keep_states: return every state (else only the last).

        Returns:
            ``(states, predictions)``: internal states after each updated step (or the last one) and the
            predictions of ``decode``.
        """
        core = self.core
        steps = len(drives) if steps is None else steps
        if steps > len(drives) and (decode is None or feedback is None):
            raise ValueError(f"{steps} steps with {len(drives)} inputs: the free-running steps need decode and feedback")
        resets = None if keep is None else (keep == 0).any(0).tolist()  # one host sync, not one per step
        states, predictions = [], []
        for t in range(steps):
            if resets is not None and resets[t] and h is not None:
                h = h * keep[:, t].view(-1, *([1] * (h.dim() - 1)))
            if h is None:
                if decode is not None:
                    predictions.append(decode(None, t))
                h = self.first_state(drives[t])
            else:
                moved = transport(h, t) if transport is not None else \
                    core.transport(h, None if offsets is None else offsets[:, t])
                if decode is not None:
                    predictions.append(decode(moved, t))
                if t < len(drives):
                    drive = drives[t]
                elif t + 1 < steps:
                    drive = feedback(predictions[-1], t - len(drives))
                else:
                    break
                h = core.recur(moved, drive, weights)
            if keep_states or not states:
                states.append(h)
            else:
                states[0] = h
        return states, predictions

    def first_state(self, drive: torch.Tensor) -> torch.Tensor:
        """The internal state one step after the zero state: ``act(drive)`` in every velocity channel
        (``conv_rec(S_v 0) = 0``, no bias), as a view ``(B, V, ...)`` broadcast from ``drive (B, ...)``."""
        first = self.core.activation(drive)
        return first[:, None].expand(first.shape[0], self.num_velocities, *first.shape[1:])

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate ``x (B, T, C_in, H, W)`` (floating point, on the module's device and, outside autocast,
        of its dtype) and return it."""
        check_float_tensor("x", x, ndim=5, layout="(B, T, C_in, H, W)")
        check_channels("x", x, 2, self.in_channels, "(B, T, C_in, H, W)")
        check_module_tensor("x", x, self)
        return x

    def check_offsets(self, name: str, offsets: torch.Tensor, batch: int) -> torch.Tensor:
        """Validate integer offsets ``(B, ..., 2)`` for this flow and return them as ``long`` on the module's
        device."""
        if not self.core.supports_offsets:
            self.core.reject_offsets(self.flow)
        if not isinstance(offsets, torch.Tensor) or offsets.is_floating_point() or offsets.is_complex() \
                or offsets.dtype == torch.bool:
            got = offsets.dtype if isinstance(offsets, torch.Tensor) else type(offsets).__name__
            raise TypeError(f"{name} must be an integer torch.Tensor of (sx, sy) shifts, got {got}")
        if offsets.dim() < 2 or offsets.shape[0] != batch or offsets.shape[-1] != 2:
            raise ValueError(f"{name} must have shape (B, ..., 2) = ({batch}, ..., 2), got {tuple(offsets.shape)}")
        return offsets.to(device=module_device(self), dtype=torch.long)

    def internal_state(self, state: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Validate a public state ``(B, V, C, H, W)`` against the batch, frame size, dtype and device of the input
        ``like (B, T, C_in, H, W)``; return it in the core's internal layout."""
        expected = (like.shape[0], self.num_velocities, self.state_channels, *like.shape[-2:])
        if not isinstance(state, torch.Tensor):
            raise TypeError(f"state must be a torch.Tensor of shape {expected}, got {type(state).__name__}")
        if tuple(state.shape) != expected:
            raise ValueError(f"state must have shape (B, V, C, H, W) = {expected}, got {tuple(state.shape)}")
        if state.dtype != like.dtype:
            raise TypeError(f"state has dtype {state.dtype} but the input has {like.dtype}; they must match")
        if state.device != like.device:
            raise ValueError(f"state is on {state.device} but the input is on {like.device}; move both to one device")
        return self.core.state_from_public(state)


class GRNNPlus(FERNN):
    """The G-RNN+ baseline: a FERNN whose exact shifts are replaced by learned per-velocity kernels.

    Same arguments as :class:`FERNN` (``recurrence`` is fixed to ``"learned"``). It has the velocity
    channels and the parameter count of a FERNN but is not flow equivariant.
    """

    def __init__(self, in_channels: int, hidden_channels: int, flow: Flow, kernel_size: int = 3, **kwargs) -> None:
        if "recurrence" in kwargs:
            raise TypeError("GRNNPlus fixes recurrence='learned'; use FERNN(recurrence=...) to choose")
        super().__init__(in_channels, hidden_channels, flow, kernel_size, recurrence="learned", **kwargs)


def _check_odd(name: str, value: int) -> int:
    value = check_int(name, value, minimum=1)
    if value % 2 == 0:
        raise ValueError(f"{name} must be odd (the convolutions pad k // 2 on each side), got {value}")
    return value


def _check_batch_vector(name: str, value: torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    """Validate a ``(B,)`` bool or 0/1 tensor and return it on ``like``'s device."""
    if not isinstance(value, torch.Tensor) or value.shape != (batch,):
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must be a ({batch},) bool tensor (one flag per batch item), got {got}")
    return value.to(like.device)
