"""Scripted policies of the block world, for any number of envs at once (numpy over envs, no loop over them).

``biased-walk`` is the data policy of FloWM's block-world videos (``biased_walk_v2`` in the paper's generator): walk
to a wall, turn to look toward the room's centre for a few steps, crawl along the wall, and every so often cross
the room, moving forward with probability ``forward_prob`` (0.92) whenever the way is free. It sees the room from
the agent's place, so the videos keep returning to views of the whole room, and blocks leave and re-enter view.

A scripted policy is called with the envs' ``info`` (batched: ``agent_pos (N, 2)``, ``agent_dir (N,)``) and the
episode starts ``(N,)``, and returns actions ``(N,)``; :func:`fernn.envs.collect_episodes` takes one by name
(``policy="biased-walk"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fernn.envs.block_scenes import DIRECTIONS, FORWARD, STAY, TURN_LEFT, TURN_RIGHT

# phases of the walk
(TO_WALL, LOOK_ALIGN, LOOK, CRAWL_ALIGN, CRAWL, ROOM_ALIGN, ROOM, WALL_ALIGN, WALL, TURN_AROUND) = range(10)
_HEADINGS = np.array(DIRECTIONS, np.int64)


def heading_toward(offset: np.ndarray) -> np.ndarray:
    """The heading ``(N,)`` (an index of ``DIRECTIONS``) closest to the direction of ``offset (N, 2)``; the larger
    component wins (x on a tie)."""
    along_x = np.abs(offset[:, 0]) >= np.abs(offset[:, 1])
    x_heading = np.where(offset[:, 0] >= 0, 0, 2)
    y_heading = np.where(offset[:, 1] >= 0, 1, 3)
    return np.where(along_x, x_heading, y_heading)


def turn_toward(heading: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The turn toward ``target`` from ``heading``: ``TURN_LEFT`` (also for a half turn), ``TURN_RIGHT``, or
    ``-1`` when already aligned."""
    difference = (target - heading) % 4
    return np.select([difference == 0, difference == 3], [-1, TURN_RIGHT], TURN_LEFT)


class BiasedWalk:
    """The wall-biased walk with looks toward the centre (see the module docstring), for ``num_envs`` envs.

    Args:
        room_size: cells per side.
        num_envs: envs acted for.
        forward_prob: probability of stepping forward when the way is free (FloWM: 0.92).
        observe_steps: steps spent looking toward the centre (FloWM: 5).
        seed: seed of its random choices.
    """

    def __init__(self, room_size: int, num_envs: int = 1, *, forward_prob: float = 0.92, observe_steps: int = 5,
                 seed: int | None = None) -> None:
        if not 0.0 <= float(forward_prob) <= 1.0:
            raise ValueError(f"forward_prob must be a probability in [0, 1], got {forward_prob!r}")
        self.room_size, self.forward_prob, self.observe_steps = room_size, float(forward_prob), int(observe_steps)
        self.rng = np.random.default_rng(seed)
        self.phase = np.full(num_envs, TO_WALL, np.int64)
        self.remaining = np.zeros(num_envs, np.int64)
        self.side = np.ones(num_envs, np.int64)  # +1: crawl a quarter turn left of the way to the centre
        self.target = np.zeros(num_envs, np.int64)

    def __call__(self, info: dict[str, Any], starts: np.ndarray) -> np.ndarray:
        position = np.asarray(info["agent_pos"], np.int64).reshape(-1, 2)
        heading = np.asarray(info["agent_dir"], np.int64).reshape(-1)
        count = len(heading)
        if len(self.phase) != count:
            raise ValueError(f"this BiasedWalk acts for {len(self.phase)} envs; got the info of {count}")
        self.phase[np.asarray(starts, bool)] = TO_WALL
        ahead = position + _HEADINGS[heading]
        free = ((ahead >= 0) & (ahead < self.room_size)).all(-1)
        centre = heading_toward((self.room_size - 1) / 2 - position)
        draw = self.rng.random((count, 2))
        step = (draw[:, 0] < self.forward_prob) & free
        actions = np.full(count, STAY, np.int64)
        phase = self.phase.copy()

        def set_where(mask: np.ndarray, action: Any = None, new_phase: Any = None) -> None:
            if action is not None:
                actions[mask] = np.broadcast_to(action, count)[mask]
            if new_phase is not None:
                self.phase[mask] = np.broadcast_to(new_phase, count)[mask]

        def align(at_phase: int, toward: np.ndarray, next_phase: int) -> np.ndarray:
            """Turn the envs in ``at_phase`` toward heading ``toward``; those facing it stay and go to ``next_phase``
            (returned as a mask)."""
            at = phase == at_phase
            turn = turn_toward(heading, toward)
            set_where(at & (turn >= 0), turn)
            aligned = at & (turn < 0)
            set_where(aligned, STAY, next_phase)
            return aligned

        # 0: walk straight to a wall, then look
        at = phase == TO_WALL
        set_where(at & free, FORWARD)
        set_where(at & ~free, STAY, LOOK_ALIGN)
        # 1-2: face the centre, then look for observe_steps
        self.remaining[align(LOOK_ALIGN, centre, LOOK)] = self.observe_steps
        at = phase == LOOK
        set_where(at, STAY)
        self.remaining[at] -= 1
        done = at & (self.remaining <= 0)
        self.side[done] = np.where(draw[done, 1] < 0.5, 1, -1)
        set_where(done, STAY, CRAWL_ALIGN)
        # 3-4: turn to run along the wall, crawl along it (turning at corners), sometimes head into the room
        along = (centre + self.side) % 4
        turn = turn_toward(heading, along)
        at = phase == CRAWL_ALIGN
        set_where(at & (free | (turn < 0)), STAY, CRAWL)
        set_where(at & ~free & (turn >= 0), turn)
        at = phase == CRAWL
        set_where(at & step, FORWARD)
        set_where(at & ~free, np.where(self.side > 0, TURN_RIGHT, TURN_LEFT))  # a corner: keep the wall at hand
        inward = at & free & ~step
        self.target[inward] = centre[inward]
        set_where(inward, STAY, ROOM_ALIGN)
        # 5-6: face the centre, walk into the room until a stop or a wall
        align(ROOM_ALIGN, self.target, ROOM)
        at = phase == ROOM
        set_where(at & step, FORWARD)
        stop = at & ~step
        self.target[stop] = (heading[stop] + np.where(draw[stop, 1] < 0.5, 1, -1)) % 4
        set_where(stop, STAY, WALL_ALIGN)
        # 7-9: turn a quarter, walk straight to the wall, turn around, and look again
        align(WALL_ALIGN, self.target, WALL)
        at = phase == WALL
        set_where(at & free, FORWARD)
        hit = at & ~free
        self.target[hit] = (heading[hit] + 2) % 4
        set_where(hit, STAY, TURN_AROUND)
        align(TURN_AROUND, self.target, LOOK_ALIGN)
        return actions


SCRIPTED_POLICIES = {"biased-walk": BiasedWalk}
