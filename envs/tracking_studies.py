"""The settings the tracking studies evaluate on (``MNISTWorldTrack-v0``, one definition for the RL occlusion grid,
the planner, the dream and their scripts): target velocities *seen* in training (the eight non-zero velocities of
radius 1) or *unseen* (a component of 2: ``unseen_velocities(1, 2)``), with or without occlusion gaps (the window
dark for ``gap`` of every :data:`GAP_EVERY` steps)."""

from __future__ import annotations

from typing import Any

from fernn.envs.velocities import unseen_velocities, velocity_grid

#: steps per occlusion cycle; a gap darkens the last ``gap_length`` of them
GAP_EVERY = 10
#: the gap of the studies' occluded cells ("-gap4")
STUDY_GAP = 4
#: the named cells: target velocities and gap length
STUDY_CELLS = {"seen": ("seen", 0), "unseen": ("unseen", 0), "seen-gap4": ("seen", STUDY_GAP),
               "unseen-gap4": ("unseen", STUDY_GAP)}


def target_velocities(which: str) -> list[list[int]]:
    """The ``seen`` (training) or ``unseen`` target velocities, as JSON-able lists."""
    if which == "seen":
        return [list(v) for v in velocity_grid(1) if v != (0, 0)]
    if which == "unseen":
        return [list(v) for v in unseen_velocities(1, 2)]
    raise ValueError(f"target velocities must be seen or unseen; got {which!r}")


def tracking_kwargs(which: str, gap: int = 0) -> dict[str, Any]:
    """``gym.make`` kwargs of ``MNISTWorldTrack-v0`` for ``which`` target velocities and a ``gap`` in every
    :data:`GAP_EVERY` steps."""
    return {"target_velocities": target_velocities(which), "gap_every": GAP_EVERY, "gap_length": gap}


def study_kwargs(cell: str) -> dict[str, Any]:
    """``gym.make`` kwargs of a named cell of :data:`STUDY_CELLS` (``seen``, ``unseen``, ``seen-gap4``,
    ``unseen-gap4``)."""
    if cell not in STUDY_CELLS:
        raise ValueError(f"unknown tracking study cell {cell!r}; accepted: {', '.join(STUDY_CELLS)}")
    return tracking_kwargs(*STUDY_CELLS[cell])
