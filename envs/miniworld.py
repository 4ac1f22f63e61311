"""MiniWorld as a first-person world (:mod:`fernn.envs.first_person_world`): an adapter for the 3-D renderer FloWM's
environments were generated with, behind the ``[peers]`` extra.

MiniWorld moves its agent continuously (15-degree turns, 0.15-unit steps, from random headings). The adapter
configures it as FloWM-3D's group needs and measures what each step did:

* turns of exactly 90 degrees and forward steps of exactly one unit (one cell), no drift, no domain randomisation;
* the agent put at the centre of its cell, facing a cardinal heading, at every reset (the view rendered again);
* ``info["self_motion"]``: the ``(turn, forward)`` the step carried out (a step into a wall or a box is none: a
  step that would leave the floor plan is undone, as MiniWorld tests only the point a step lands on);
* the declaration: MiniWorld's turn left / turn right / forward actions (and stay, for an env with more actions:
  back, pick up, drop and done do not move the agent and are declared as stay), the room's side in cells (the
  floor plan's extent, rounded up) and the camera's field of view (``cam_fov_y``; views must be square).

MiniWorld renders with OpenGL: headless machines need ``PYGLET_HEADLESS=1`` (EGL), which the adapter sets before
MiniWorld is first imported. ``gym.make("fernn.envs:MiniWorldFirstPerson-v0", world="MiniWorld-OneRoom-v0",
obs_size=32)`` builds one; ``MiniWorldFirstPerson(env)`` wraps a MiniWorld env made elsewhere.
"""

from __future__ import annotations

import math
import os
from typing import Any

import gymnasium as gym
import numpy as np

from fernn.envs.first_person_world import FirstPersonGeometry, FirstPersonWorld

#: MiniWorld's action ids that move the agent: turn left, turn right, forward (MiniWorldEnv.Actions)
MOVING_ACTIONS = {0: (1, 0), 1: (-1, 0), 2: (0, 1)}
QUARTER = math.pi / 2


def import_miniworld() -> Any:
    """``import miniworld`` headless (``PYGLET_HEADLESS=1`` unless set), or one error naming the extra or the cause."""
    from fernn._extras import require

    os.environ.setdefault("PYGLET_HEADLESS", "1")
    require("miniworld", "peers", "MiniWorld first-person worlds")
    try:
        import miniworld
    except Exception as error:  # noqa: BLE001 - pyglet raises many kinds when it finds no display or no EGL
        raise RuntimeError(f"MiniWorld cannot start here ({type(error).__name__}: {str(error).splitlines()[0][:160]}); "
                           "it renders with OpenGL: set PYGLET_HEADLESS=1 on a machine without a display (EGL and "
                           "Mesa installed)") from error
    return miniworld


class MiniWorldFirstPerson(FirstPersonWorld):
    """A MiniWorld env as a first-person world (see the module docstring).

    Args:
        env: a MiniWorld env (``gym.make("MiniWorld-OneRoom-v0", obs_width=S, obs_height=S)``) with square views.
        room_size: the room's side in cells (default: the floor plan's extent, rounded up).
    """

    def __init__(self, env: gym.Env, room_size: int | None = None) -> None:
        world = env.unwrapped
        if not all(hasattr(world, name) for name in ("agent", "params", "render_obs", "min_x")):
            raise TypeError(f"MiniWorldFirstPerson wraps a MiniWorld env; got {type(world).__name__}")
        height, width = env.observation_space.shape[:2]
        if height != width:
            raise ValueError(f"a first-person world has square views; this MiniWorld env renders {height}x{width}: make "
                             "it with obs_width = obs_height")
        params = world.params.copy()
        params.set("turn_step", 90, 90, 90)
        params.set("forward_step", 1.0, 1.0, 1.0)
        params.set("forward_drift", 0.0, 0.0, 0.0)
        world.params, world.domain_rand, world.max_forward_step = params, False, 1.0
        extent = max(world.max_x - world.min_x, world.max_z - world.min_z)
        motions = tuple(MOVING_ACTIONS.get(action, (0, 0)) for action in range(env.action_space.n))
        geometry = FirstPersonGeometry(motions, room_size if room_size is not None else math.ceil(extent - 1e-6),
                                       float(params.sample(None, "cam_fov_y")))
        super().__init__(env, geometry)

    def _pose(self) -> tuple[np.ndarray, float]:
        agent = self.env.unwrapped.agent
        return np.array(agent.pos, np.float64), float(agent.dir)

    def _snap(self) -> np.ndarray:
        """Put the agent at its cell's centre facing a cardinal heading; the view rendered from there."""
        world = self.env.unwrapped
        world.agent.pos = np.array([math.floor(world.agent.pos[0]) + 0.5, world.agent.pos[1],
                                    math.floor(world.agent.pos[2]) + 0.5])
        world.agent.dir = round(world.agent.dir / QUARTER) % 4 * QUARTER
        return world.render_obs()

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = super().reset(**kwargs)
        return self._snap(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._before = self._pose()
        _, reward, terminated, truncated, info = super().step(action)  # info["self_motion"]: carried_out
        return self._snap(), reward, terminated, truncated, info

    def carried_out(self, action: int, info: dict[str, Any]) -> tuple[int, int]:
        """The quarter turns and cells the step moved the agent, measured from its pose before the step (a step
        that would leave the floor plan is undone: MiniWorld tests only the point a step lands on)."""
        (position, heading), (moved, turned) = self._before, self._pose()
        world = self.env.unwrapped
        if not any(room.point_inside(world.agent.pos) for room in world.rooms):
            world.agent.pos, moved = position.copy(), position
        return int(round((turned - heading) / QUARTER)), int(round(float(np.linalg.norm((moved - position)[[0, 2]]))))


def make_first_person(world: str = "MiniWorld-OneRoom-v0", obs_size: int = 32, room_size: int | None = None,
                      render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """``gym.make(world, obs_width=obs_size, obs_height=obs_size, **kwargs)`` as a first-person world (the entry
    point of ``fernn.envs:MiniWorldFirstPerson-v0``)."""
    import_miniworld()
    if world not in gym.registry or not world.startswith("MiniWorld-"):
        raise ValueError(f"world must be a MiniWorld id such as MiniWorld-OneRoom-v0; got {world!r}")
    env = gym.make(world, obs_width=obs_size, obs_height=obs_size, render_mode=render_mode, **kwargs)
    return MiniWorldFirstPerson(env, room_size)
