"""The first-person world contract: what an env declares so that FloWM-3D, the RSSM and the planner can use it.

FloWM-3D keeps an egocentric map of the room that turns and shifts with the agent's own motion, exactly, by the
group action of 90-degree turns and one-cell steps (:class:`fernn.egocentric.EgocentricFlow`). An env is a
first-person world when it says, through :attr:`first_person` (reachable through wrappers, so a wrapper can
declare it for an env it does not own):

* ``action_motions``: each action's ``(turn, forward)``: turn +1 is one 90-degree turn left, -1 right; forward 1 is
  one cell ahead; ``(0, 0)`` stays;
* ``room_size``: cells per side of the room (the map holds ``2 room_size + 1``);
* ``fov``: the field of view in degrees of its square views (vertical = horizontal);
* ``turn_degrees`` and ``step_cells``: 90 and 1, the only motions the map's group represents (refused otherwise);

and reports the motion it carried out each step in ``info["self_motion"]`` (a forward step a wall stopped is
``(0, 0)``): what ``collect`` records as the observer's moves and FloWM-3D moves its map by. The block world
declares it itself; :class:`FirstPersonWorld` declares it for any env (the MiniWorld adapter,
:mod:`fernn.envs.miniworld`, is one). ``collect`` records the declaration in the file's ``meta["first_person"]``;
training reads the room and field of view from it, and ``plan`` checks the env's against the world model's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from fernn.egocentric import MOTION_STEPS as MOTIONS  # the (turn, forward) motions the map's group represents


@dataclass(frozen=True)
class FirstPersonGeometry:
    """A first-person world's declaration (see the module docstring); checked at construction."""

    action_motions: tuple[tuple[int, int], ...]
    room_size: int
    fov: float = 60.0
    turn_degrees: float = 90.0
    step_cells: float = 1.0

    def __post_init__(self) -> None:
        from fernn.envs.block_world import check_fov, check_room_size

        motions = tuple(tuple(int(v) for v in motion) for motion in np.asarray(self.action_motions).reshape(-1, 2))
        if not motions or any(motion not in MOTIONS for motion in motions):
            raise ValueError(f"action_motions must give each action's (turn, forward) from {MOTIONS} (+1 turns left, "
                             f"forward 1 is one cell); got {self.action_motions!r}")
        object.__setattr__(self, "action_motions", motions)
        object.__setattr__(self, "room_size", check_room_size(self.room_size))
        object.__setattr__(self, "fov", check_fov(self.fov))
        if self.turn_degrees != 90 or self.step_cells != 1:
            raise ValueError(f"a first-person world for FloWM-3D turns 90 degrees and steps one cell (the motions its "
                             f"map represents exactly); got turns of {self.turn_degrees} degrees and steps of "
                             f"{self.step_cells} cells: configure the env so (e.g. MiniWorld's turn_step and "
                             "forward_step params)")

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as a trajectory file's ``meta["first_person"]`` records it."""
        return {**dataclasses.asdict(self), "action_motions": [list(m) for m in self.action_motions]}

    @classmethod
    def from_dict(cls, values: Any, where: str, entry: str = "first_person") -> FirstPersonGeometry:
        """The declaration recorded in ``where`` (a file's ``meta[entry]``), or a ``ValueError`` naming both."""
        if not isinstance(values, dict):
            raise ValueError(f"{where}: meta['{entry}'] must be a JSON object, got {type(values).__name__}; the "
                             "file's meta is damaged or forged: collect the file again")
        fields = {field.name for field in dataclasses.fields(cls)}
        try:
            return cls(**{key: value for key, value in values.items() if key in fields})
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: meta['{entry}'] records {error}; the file's meta is damaged or forged: collect "
                             "the file again") from error


def first_person_geometry(env: gym.Env | gym.vector.VectorEnv) -> FirstPersonGeometry | None:
    """The env's first-person declaration (through its wrappers), or ``None`` for an env that makes none."""
    from fernn.envs.wrappers import declared

    geometry = declared(env, "first_person")
    return geometry if isinstance(geometry, FirstPersonGeometry) else None


class FirstPersonWorld(gym.Wrapper):
    """Declare an env a first-person world (see the module docstring): ``first_person``, ``motion_kind``,
    ``action_moves()`` and ``info["self_motion"]`` for an env that has none of them.

    ``info["self_motion"]`` is the acted motion from ``geometry.action_motions`` unless the env reports its own (or
    a subclass measures what happened: :meth:`carried_out`).
    """

    motion_kind = "first-person"

    def __init__(self, env: gym.Env, geometry: FirstPersonGeometry) -> None:
        super().__init__(env)
        if not isinstance(env.action_space, gym.spaces.Discrete) or env.action_space.n != len(geometry.action_motions):
            raise ValueError(f"action_motions gives {len(geometry.action_motions)} motions; the env's actions are "
                             f"{env.action_space}: one (turn, forward) per action of a Discrete space")
        self.first_person = geometry

    def action_moves(self) -> np.ndarray:
        """``(A, 2)`` int64: each action's ``(turn, forward)``."""
        return np.array(self.first_person.action_motions, np.int64)

    def carried_out(self, action: int, info: dict[str, Any]) -> tuple[int, int]:
        """The ``(turn, forward)`` the step carried out: the env's own report, else the action's motion."""
        if "self_motion" in info:
            return tuple(int(v) for v in info["self_motion"])
        return self.first_person.action_motions[int(action)]

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "self_motion": np.zeros(2, np.int64)}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        motion = np.array(self.carried_out(action, info), np.int64)
        return obs, reward, terminated, truncated, {**info, "self_motion": motion}
