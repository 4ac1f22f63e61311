"""The flow-equivariant recurrent network (FERNN) layer, for any :class:`fernn.Flow`."""

from __future__ import annotations

import torch
from torch import nn

from fernn._validation import check_channels, check_choice, check_float_tensor, check_int
from fernn.flows import Flow

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

    Shapes:
        ``forward(x)``: ``x (B, T, C_in, H, W)`` float -> ``h (B, T, V, C, H, W)`` in the image frame,
        velocities in the order of ``flow``; ``C = hidden_channels`` for translation flows.
    """

    def __init__(self, in_channels: int, hidden_channels: int, flow: Flow, kernel_size: int = 3, *,
                 input_kernel_size: int | None = None, activation: str = "relu", bias: bool = False,
                 recurrence: str = "exact") -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.hidden_channels = check_int("hidden_channels", hidden_channels, minimum=1)
        if not isinstance(flow, Flow):
            raise TypeError(f"flow must be a fernn Flow (TranslationFlow, RotationFlow), got {type(flow).__name__}")
        kernel_size = _check_odd("kernel_size", kernel_size)
        input_kernel_size = _check_odd("input_kernel_size", kernel_size if input_kernel_size is None else input_kernel_size)
        check_choice("activation", activation, ("relu", "tanh"))
        check_choice("recurrence", recurrence, RECURRENCES)
        self.flow = flow
        self.recurrence = recurrence
        self.core = flow.build_core(self.in_channels, self.hidden_channels, kernel_size, input_kernel_size,
                                    activation, bool(bias), recurrence)

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
        h = None if state is None else self._internal_state(state, x)
        states = self.run_internal(x, h, self.core.weights())
        hidden = self.core.states_to_public(torch.stack(states, 1))
        return (hidden, hidden[:, -1]) if return_state else hidden

    def run_internal(self, x: torch.Tensor, h: torch.Tensor | None, weights: object) -> list[torch.Tensor]:
        """The recurrence on the core's internal layout, for models that keep stepping afterwards.

        Args:
            x: validated ``(B, T, C_in, H, W)`` frames.
            h: internal state (``core.state_from_public`` of a ``(B, V, C, H, W)`` state), or ``None`` for
                the zero state. From the zero state the first step is ``act(conv_in(x_0))`` for every
                velocity channel (``conv_rec`` has no bias, so ``conv_rec(S_v 0) = 0`` exactly): the
                transport and the recurrent convolution of that step are skipped, bit-identically.
            weights: ``core.weights()``, computed once per sequence by the caller.

        Returns:
            The T internal states, in time order (the first may be a view broadcast over velocities).
        """
        batch, steps = x.shape[:2]
        drives = self.core.drive(x.flatten(0, 1), weights)
        # unbind, not drives[:, t]: the backward of T selects would write T zero-filled copies of all drives
        drives = drives.view(batch, steps, *drives.shape[1:]).unbind(1)
        states = []
        for drive in drives:
            if h is None:
                h = self.first_state(drive)
            else:
                h = self.core.recur(self.core.transport(h), drive, weights)
            states.append(h)
        return states

    def first_state(self, drive: torch.Tensor) -> torch.Tensor:
        """The internal state one step after the zero state: ``act(drive)`` in every velocity channel
        (``conv_rec(S_v 0) = 0``, no bias), as a view ``(B, V, ...)`` broadcast from ``drive (B, ...)``."""
        first = self.core.activation(drive)
        return first[:, None].expand(first.shape[0], self.num_velocities, *first.shape[1:])

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate ``x (B, T, C_in, H, W)`` and return it."""
        check_float_tensor("x", x, ndim=5, layout="(B, T, C_in, H, W)")
        check_channels("x", x, 2, self.in_channels, "(B, T, C_in, H, W)")
        return x

    def _internal_state(self, state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        expected = (x.shape[0], self.num_velocities, self.state_channels, x.shape[-2], x.shape[-1])
        if not isinstance(state, torch.Tensor):
            raise TypeError(f"state must be a torch.Tensor of shape {expected}, got {type(state).__name__}")
        if tuple(state.shape) != expected:
            raise ValueError(f"state must have shape (B, V, C, H, W) = {expected} for x of shape "
                             f"{tuple(x.shape)}, got {tuple(state.shape)}")
        if state.dtype != x.dtype:
            raise TypeError(f"state has dtype {state.dtype} but x has {x.dtype}; they must match")
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
