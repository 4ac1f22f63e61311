"""Flows: the sets of velocities a FERNN's hidden channels move with, and how they act on tensors.

A flow with V velocities gives a FERNN V velocity channels. Channel ``v`` of the hidden state is
moved every step by its own flow ``S_v``. The group element ``nu`` of a flow acts on an input
sequence by ``x'_t = S_{nu t} x_t`` and on a hidden sequence ``h`` of shape ``(B, T, V, C, H, W)`` by

    h'_t[v] = S_{nu t} h_t[v - nu]     (defined for the channels v with v - nu in the grid)

which is the law :func:`fernn.check_equivariance` tests.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from fernn._validation import check_int
from fernn.shifts import roll_batched

if TYPE_CHECKING:
    from fernn.core import RecurrentCore


class Flow(abc.ABC):
    """A finite set of velocities and their action on frames and hidden states."""

    @property
    @abc.abstractmethod
    def num_velocities(self) -> int:
        """V, the number of velocity channels of a FERNN built with this flow."""

    def __len__(self) -> int:
        return self.num_velocities

    @property
    def field_size(self) -> int:
        """State channels per hidden channel: 1, or N for the C_N regular fields of a rotation flow."""
        return 1

    @abc.abstractmethod
    def element(self, nu: Any) -> Any:
        """Validate a flow element (one velocity) and return it in canonical form."""

    @abc.abstractmethod
    def relabel(self, nu: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(source, valid)``, LongTensor and BoolTensor ``(V,)``: channel ``v`` of the
        transformed state comes from channel ``source[v]`` (the index of ``v - nu``) where ``valid``."""

    @abc.abstractmethod
    def act_on_frames(self, x: torch.Tensor, nu: Any, times: torch.Tensor) -> torch.Tensor:
        """Apply ``S_{nu t}`` to each frame of ``x`` ``(B, T, C, H, W)``, ``t = times[i]`` for frame ``i``."""

    @abc.abstractmethod
    def act_on_fields(self, h: torch.Tensor, nu: Any, times: torch.Tensor) -> torch.Tensor:
        """Apply ``S_{nu t}`` to hidden fields ``h`` ``(B, T, V, C, H, W)`` without relabelling channels."""

    def act_on_hidden(self, h: torch.Tensor, nu: Any, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform a hidden sequence ``h`` ``(B, T, V, C, H, W)`` by ``nu``.

        Returns ``(h', valid)`` with ``h'_t[v] = S_{nu t} h_t[v - nu]`` for the channels where
        ``valid`` ``(V,)`` is true (elsewhere ``h'`` holds the clamped neighbour and must be ignored).
        """
        source, valid = self.relabel(nu)
        moved = self.act_on_fields(h.index_select(2, source.to(h.device)), nu, times)
        return moved, valid

    @abc.abstractmethod
    def build_core(self, in_channels: int, hidden_channels: int, kernel_size: int, input_kernel_size: int,
                   activation: str, bias: bool, recurrence: str, relaxed: int = 0) -> RecurrentCore:
        """Build the :class:`fernn.core.RecurrentCore` that :class:`fernn.FERNN` runs for this flow (``relaxed``: the
        filter banks of an approximately equivariant recurrence, :mod:`fernn.relaxed`; 0 for exact sharing)."""


#: the most velocity channels a flow may have (a 99 x 99 grid, vmax 49): beyond it one state dwarfs any frame
MAX_VELOCITIES = 99 * 99
MAX_VMAX = 49


def grid_velocities(vmax: int) -> int:
    """How many velocities the grid of radius ``vmax`` holds (``TranslationFlow(vmax)``'s channels): ``(2 vmax + 1)^2``."""
    return (2 * vmax + 1) ** 2


class TranslationFlow(Flow):
    """Integer translation velocities ``(vx, vy)`` in pixels per step.

    ``TranslationFlow(vmax)`` is the grid ``{(vx, vy): |vx| <= vmax, |vy| <= vmax}`` (vmax=0: 1 channel,
    1: 9, 2: 25), ordered with ``vx`` major as in the reference code; ``TranslationFlow([(1, 0), (0, 0)])``
    (or ``velocities=[...]``) takes an explicit list, in the order given.

    Moving an image one step by ``(vx, vy)`` is ``torch.roll(img, shifts=(vy, vx), dims=(-2, -1))``.

    Attributes:
        velocities: LongTensor ``(V, 2)`` of ``(vx, vy)``.
    """

    def __init__(self, vmax: int | Sequence[Sequence[int]] | None = None, *,
                 velocities: Sequence[Sequence[int]] | None = None) -> None:
        if velocities is None and isinstance(vmax, (Sequence, torch.Tensor)) and not isinstance(vmax, str):
            velocities, vmax = vmax, None
        if (vmax is None) == (velocities is None):
            raise TypeError("TranslationFlow takes either vmax (an integer >= 0) or velocities (a list of (vx, vy)), "
                            f"not both or neither; got vmax={vmax!r}, velocities={velocities!r}")
        if velocities is None:
            vmax = check_int("vmax", vmax, minimum=0)
            if grid_velocities(vmax) > MAX_VELOCITIES:
                raise ValueError(f"vmax={vmax} gives {grid_velocities(vmax):,} velocity channels; at most "
                                 f"{MAX_VELOCITIES:,} are accepted (vmax <= {MAX_VMAX}); a velocity larger than the "
                                 "frame is the same as a smaller one on a torus")
            grid = torch.arange(-vmax, vmax + 1)
            self.velocities = torch.cartesian_prod(grid, grid).reshape(-1, 2)  # vx major, as the reference code
        else:
            self.velocities = _parse_velocity_list(velocities)

    @property
    def num_velocities(self) -> int:
        return int(self.velocities.shape[0])

    @property
    def vmax(self) -> int:
        """The largest speed along either axis."""
        return int(self.velocities.abs().max())

    def __repr__(self) -> str:
        return f"TranslationFlow(velocities={self.velocities.tolist()})"

    def element(self, nu: Any) -> tuple[int, int]:
        if isinstance(nu, torch.Tensor):
            nu = nu.tolist()
        if not isinstance(nu, Sequence) or len(nu) != 2:
            raise ValueError(f"a translation flow element must be a pair of integers (vx, vy), got {nu!r}")
        return check_int("nu[0] (vx)", nu[0]), check_int("nu[1] (vy)", nu[1])

    def relabel(self, nu: Any) -> tuple[torch.Tensor, torch.Tensor]:
        shifted = self.velocities - torch.tensor(self.element(nu))
        matches = (shifted[:, None, :] == self.velocities[None, :, :]).all(-1)
        return matches.float().argmax(1), matches.any(1)

    def act_on_frames(self, x: torch.Tensor, nu: Any, times: torch.Tensor) -> torch.Tensor:
        steps = torch.as_tensor(self.element(nu))[None, :] * times.long().cpu()[:, None]
        return roll_batched(x.transpose(0, 1), steps).transpose(0, 1)

    def act_on_fields(self, h: torch.Tensor, nu: Any, times: torch.Tensor) -> torch.Tensor:
        return self.act_on_frames(h, nu, times)

    def build_core(self, in_channels: int, hidden_channels: int, kernel_size: int, input_kernel_size: int,
                   activation: str, bias: bool, recurrence: str, relaxed: int = 0) -> RecurrentCore:
        from fernn.translation import TranslationCore

        return TranslationCore(self, in_channels, hidden_channels, kernel_size, input_kernel_size,
                               activation, bias, recurrence, relaxed)


def _parse_velocity_list(velocities: Sequence[Sequence[int]]) -> torch.Tensor:
    if isinstance(velocities, torch.Tensor):
        velocities = velocities.tolist()
    if isinstance(velocities, (str, bytes)) or not isinstance(velocities, Sequence) or len(velocities) == 0:
        raise ValueError(f"velocities must be a non-empty list of (vx, vy) integer pairs, got {velocities!r}")
    parsed = []
    for i, v in enumerate(velocities):
        if not isinstance(v, Sequence) or len(v) != 2:
            raise ValueError(f"velocities[{i}] must be a pair of integers (vx, vy), got {v!r}")
        parsed.append((check_int(f"velocities[{i}][0]", v[0]), check_int(f"velocities[{i}][1]", v[1])))
    if len(set(parsed)) != len(parsed):
        raise ValueError(f"velocities must not repeat a velocity, got {parsed}")
    if len(parsed) > MAX_VELOCITIES:
        raise ValueError(f"velocities lists {len(parsed):,} velocities; at most {MAX_VELOCITIES:,} are accepted")
    return torch.tensor(parsed, dtype=torch.long)


class RotationFlow(Flow):
    """Angular velocities ``w`` in degrees per step, acting on C_N regular fields (escnn).

    ``RotationFlow([-40, -30, ..., 40], group_order=8)`` is the paper's FERNN-V4^R; ``RotationFlow([0])``
    gives the G-RNN baseline with the same escnn network. Velocity channels keep the order given.
    A positive angle turns an image the way ``torch.rot90(img, k=1, dims=(-2, -1))`` does for +90 deg.

    Args:
        angular_velocities: finite numbers, degrees per step, no repeats.
        group_order: N of the rotation group C_N of the hidden fields (>= 1).
        orientation_shift: how channel ``w`` cycles its orientation axis by ``w * N / 360`` steps when that
            is fractional: ``"fourier"`` (band-limited shift, default) or ``"truncate"`` (round towards
            zero, as the reference code does: with C_8 and ``|w| < 45`` it never cycles).

    Attributes:
        angular_velocities: float64 tensor ``(V,)``.
    """

    def __init__(self, angular_velocities: Sequence[float], group_order: int = 8, *,
                 orientation_shift: str = "fourier") -> None:
        from fernn._escnn import require_escnn
        from fernn._validation import check_choice, check_finite_float

        require_escnn()  # fail here, with the install line, rather than when the first core is built
        if isinstance(angular_velocities, torch.Tensor):
            angular_velocities = angular_velocities.tolist()
        if isinstance(angular_velocities, (str, bytes)) or not isinstance(angular_velocities, Sequence) \
                or len(angular_velocities) == 0:
            raise ValueError("angular_velocities must be a non-empty list of degrees per step, got "
                             f"{angular_velocities!r}")
        values = [check_finite_float(f"angular_velocities[{i}]", w) for i, w in enumerate(angular_velocities)]
        if len(set(values)) != len(values):
            raise ValueError(f"angular_velocities must not repeat a velocity, got {values}")
        self.angular_velocities = torch.tensor(values, dtype=torch.float64)
        self.group_order = check_int("group_order", group_order, minimum=1)
        self.orientation_shift = check_choice("orientation_shift", orientation_shift, ("fourier", "truncate"))

    @property
    def num_velocities(self) -> int:
        return int(self.angular_velocities.shape[0])

    @property
    def field_size(self) -> int:
        return self.group_order

    def __repr__(self) -> str:
        return (f"RotationFlow({self.angular_velocities.tolist()}, group_order={self.group_order}, "
                f"orientation_shift={self.orientation_shift!r})")

    def element(self, nu: Any) -> float:
        from fernn._validation import check_finite_float

        if isinstance(nu, torch.Tensor):
            nu = nu.item()
        return check_finite_float("nu (degrees per step)", nu)

    def relabel(self, nu: Any) -> tuple[torch.Tensor, torch.Tensor]:
        shifted = self.angular_velocities - self.element(nu)
        matches = (shifted[:, None] - self.angular_velocities[None, :]).abs() < 1e-9
        return matches.float().argmax(1), matches.any(1)

    def act_on_frames(self, x: torch.Tensor, nu: Any, times: torch.Tensor) -> torch.Tensor:
        from fernn.rotation import rotate_batched

        angles = self.element(nu) * times.double().cpu()
        return rotate_batched(x.transpose(0, 1), angles).transpose(0, 1)

    def act_on_fields(self, h: torch.Tensor, nu: Any, times: torch.Tensor) -> torch.Tensor:
        from fernn.rotation import rotate_fields

        angles = self.element(nu) * times.double().cpu()
        return rotate_fields(h.transpose(0, 1), angles, self.group_order).transpose(0, 1)

    def build_core(self, in_channels: int, hidden_channels: int, kernel_size: int, input_kernel_size: int,
                   activation: str, bias: bool, recurrence: str, relaxed: int = 0) -> RecurrentCore:
        from fernn.rotation import RotationCore

        if relaxed:
            raise ValueError("relaxed weight sharing is available for translation flows (fernn.TranslationFlow) only: "
                             "a rotation FERNN's recurrent kernel is an escnn steerable filter, whose equivariance to "
                             "the rotation group inside each velocity channel a per-velocity combination of banks "
                             "would have to keep as well; use relaxed=0")

        return RotationCore(self, in_channels, hidden_channels, kernel_size, input_kernel_size, activation, bias,
                            recurrence)
