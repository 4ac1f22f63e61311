"""The group of a first-person agent's self-motions acting on an egocentric top-down map, exactly and in batch.

The map is ``(S, S)`` cells with the agent on the centre cell ``(c, c)``, ``c = S // 2``, facing along ``+x``; cell
``(row i, column j)`` is the offset ``x = j - c`` ahead and ``y = i - c`` to the left (rows grow to the agent's
left). An agent in a room of ``R`` cells needs ``S = 2 R + 1`` to hold the whole room wherever it stands.

One step of a map with velocity channels ``M[v]`` (``v = (vx, vy)`` cells per step, in the agent's frame) is::

    M'[g v] = g S_v M[v]        g: the agent's motion of the step

* ``S_v`` moves channel ``v`` by its velocity (``torch.roll(m, (vy, vx), (-2, -1))``, the convention of
  :class:`fernn.TranslationFlow`);
* turning left (counter-clockwise) is ``torch.rot90(m, 1, (-2, -1))`` of every map and the relabelling
  ``v -> (vy, -vx)`` of the velocity channels (a block moving ahead now moves to the agent's right); turning
  right is the inverse (``rot90(m, -1)``, ``v -> (-vy, vx)``);
* a step forward moves every map by ``(-1, 0)``; staying does nothing.

A rotation commutes with the velocity flows (``g S_v = S_{g v} g``), so the order of the two does not matter, and
every element is a permutation of cells: the group laws (four left turns, left then right) hold exactly, which
``tests/test_egocentric.py`` checks. Shifts are circular, as in :mod:`fernn.shifts`, so nothing is ever lost and
every move can be undone; with ``S = 2 R + 1`` the room itself never wraps.

The whole step, for a batch where every sample moves its own way, is one row gather of the channels-last maps
(one index per output pixel, from four precomputed tables, one per motion), with a backward that is another
gather (:func:`fernn.shifts.shift_pad_maps`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fernn._validation import check_int
from fernn.flows import TranslationFlow
from fernn.shifts import shift_pad_maps

#: the paper's five velocity channels: still, and one cell per step ahead, left, back and right
CARDINAL_VELOCITIES = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))
#: the motions the egocentric map's group represents, by id (the block world's ``Discrete(4)`` actions are these, in
#: this order): their names and their ``(turn, forward)`` (turn +1: a quarter turn left; forward 1: one cell ahead)
TURN_LEFT, TURN_RIGHT, FORWARD, STAY = 0, 1, 2, 3
MOTIONS = ("turn left", "turn right", "forward", "stay")
MOTION_STEPS = ((1, 0), (-1, 0), (0, 1), (0, 0))
#: the first-person camera the lift assumes and the block world renders with: the eye above the floor and the walls'
#: height, in cells
EYE_HEIGHT, WALL_HEIGHT = 1.5, 2.75


def motion_ids(moves: torch.Tensor) -> torch.Tensor:
    """Self-motions ``(..., 2)`` of ``(turn, forward)`` -> motion ids ``(...)`` (:data:`TURN_LEFT` .. :data:`STAY`)."""
    turn, forward = moves[..., 0], moves[..., 1]
    return torch.where(forward > 0, FORWARD, torch.where(turn > 0, TURN_LEFT, torch.where(turn < 0, TURN_RIGHT, STAY)))


def turn_velocities(velocities: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """Velocities ``(V, 2)`` seen by an agent that turned ``quarter_turns`` times left (negative: right)."""
    turned = velocities.clone()
    for _ in range(quarter_turns % 4):
        turned = torch.stack([turned[:, 1], -turned[:, 0]], -1)
    return turned


class EgocentricFlow(TranslationFlow):
    """A set of integer velocities closed under quarter turns: the velocity channels of an egocentric map.

    ``EgocentricFlow()`` is the paper's five cardinal channels :data:`CARDINAL_VELOCITIES`; ``EgocentricFlow(r)``
    every integer velocity with ``|vx|, |vy| <= r`` (``r = 0``: one still channel, the ablation without velocity
    channels); ``EgocentricFlow(velocities=[...])`` an explicit set, which must be closed under quarter turns
    (a :class:`ValueError` names a velocity whose turn is missing).
    """

    def __init__(self, vmax: int | None = None, *, velocities: Sequence[Sequence[int]] | None = None) -> None:
        if vmax is None and velocities is None:
            velocities = CARDINAL_VELOCITIES
        super().__init__(vmax, velocities=velocities)
        for quarter in (1, 2, 3):
            turned = turn_velocities(self.velocities, quarter)
            found = (turned[:, None] == self.velocities[None]).all(-1).any(1)
            if not found.all():
                missing = self.velocities[int((~found).nonzero()[0])].tolist()
                raise ValueError(f"the velocities {self.velocities.tolist()} are not closed under quarter turns: "
                                 f"{missing} turned {quarter * 90} degrees is missing; an egocentric map relabels its "
                                 "velocity channels when the agent turns, so every turn of a velocity must be a "
                                 "channel (use EgocentricFlow() for the cardinal five or EgocentricFlow(r) for a grid)")

    def turn_permutation(self, quarter_turns: int) -> torch.Tensor:
        """``(V,)``: after ``quarter_turns`` left turns, channel ``v`` holds what channel ``source[v]`` held."""
        turned = turn_velocities(self.velocities, quarter_turns)  # where each channel's content goes
        destination = (turned[:, None] == self.velocities[None]).all(-1).float().argmax(1)
        source = torch.empty_like(destination)
        source[destination] = torch.arange(len(destination))
        return source

    def __repr__(self) -> str:
        return f"EgocentricFlow(velocities={self.velocities.tolist()})"


class SelfMotion:
    """The exact one-step transport of egocentric maps (see the module docstring), batched over samples that each
    move their own way.

    Args:
        flow: the velocity channels (an :class:`EgocentricFlow`).
        size: the map side ``S`` (odd: the agent is on the centre cell).
        move_map: apply the agent's motions (``False``: the ablation without self-motion; only the velocity
            flows move the map).
    """

    def __init__(self, flow: EgocentricFlow, size: int, *, move_map: bool = True) -> None:
        if not isinstance(flow, EgocentricFlow):
            raise TypeError(f"flow must be a fernn.egocentric.EgocentricFlow, got {type(flow).__name__}")
        self.flow, self.size, self.move_map = flow, check_int("size", size, minimum=1), bool(move_map)
        if self.size % 2 == 0:
            raise ValueError(f"size must be odd (the agent stands on the centre cell), got {size}")
        self._tables: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def tables(self, pad: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(forward (4, V (S + 2 pad)^2), inverse (4, V S^2))`` row tables of the four motions: output pixel
        ``k`` of a sample's padded maps reads input row ``forward[motion, k]``; input row ``r`` lands on unpadded
        output row ``inverse[motion, r]``."""
        key = (pad, str(device))
        if key not in self._tables:
            self._tables[key] = self._build(pad, torch.device(device))
        return self._tables[key]

    def _build(self, pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        count, size = self.flow.num_velocities, self.size
        ids = torch.arange(count * size * size).view(count, size, size)
        flowed = torch.stack([torch.roll(ids[v], (int(vy), int(vx)), (0, 1))
                              for v, (vx, vy) in enumerate(self.flow.velocities.tolist())])
        moved = [flowed[self.flow.turn_permutation(1)].rot90(1, (1, 2)),
                 flowed[self.flow.turn_permutation(-1)].rot90(-1, (1, 2)),
                 torch.roll(flowed, -1, 2), flowed]
        if not self.move_map:
            moved = [flowed] * 4
        wrap = torch.arange(-pad, size + pad) % size
        forward = torch.stack([m[:, wrap][:, :, wrap].reshape(-1) for m in moved])
        inverse = torch.empty(4, count * size * size, dtype=torch.long)
        for motion, m in enumerate(moved):
            inverse[motion, m.reshape(-1)] = torch.arange(count * size * size)
        return forward.to(device), inverse.to(device)

    def move(self, maps: torch.Tensor, motions: torch.Tensor, pad: int = 0) -> torch.Tensor:
        """One step of every sample's maps.

        Args:
            maps: channels-last ``(B, V, S, S, C)`` (contiguous).
            motions: ``(B,)`` integer motions (``TURN_LEFT``, ``TURN_RIGHT``, ``FORWARD``, ``STAY``).
            pad: circular padding added around every output map (for a convolution that pads nothing).

        Returns:
            ``(B, V, S + 2 pad, S + 2 pad, C)``.
        """
        batch, count, size, _, channels = maps.shape
        if (count, size) != (self.flow.num_velocities, self.size):
            raise ValueError(f"maps must have shape (B, V, S, S, C) = (B, {self.flow.num_velocities}, {self.size}, "
                             f"{self.size}, C), got {tuple(maps.shape)}")
        motions = check_motions(motions, batch, maps.device)
        forward, inverse = self.tables(pad, maps.device)
        block = count * size * size
        offsets = torch.arange(batch, device=maps.device)[:, None] * block
        rows = ((forward[motions] + offsets).reshape(-1), (inverse[motions] + offsets).reshape(-1))
        moved = shift_pad_maps(maps.reshape(batch * count, size, size, channels), None, pad, rows)
        side = size + 2 * pad
        return moved.view(batch, count, side, side, channels)


def check_motions(motions: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """``(B,)`` integer motions in ``0..3``, or a clear error."""
    if not isinstance(motions, torch.Tensor) or motions.is_floating_point() or motions.dtype == torch.bool:
        got = motions.dtype if isinstance(motions, torch.Tensor) else type(motions).__name__
        raise TypeError(f"actions must be an integer tensor (B,) of motions 0 turn left, 1 turn right, 2 forward, "
                        f"3 stay; got {got}")
    if motions.shape != (batch,):
        raise ValueError(f"actions must have shape ({batch},), one motion per map; got {tuple(motions.shape)}")
    if motions.numel() and (int(motions.min()) < 0 or int(motions.max()) > 3):
        raise ValueError(f"actions must be motions 0 (turn left), 1 (turn right), 2 (forward) or 3 (stay); got "
                         f"values in [{int(motions.min())}, {int(motions.max())}]: an action the map's group cannot "
                         "represent")
    return motions.to(device=device, dtype=torch.long)
