"""What a planner and a dreamed policy need of a world model: :class:`WorldModelProtocol`, and the two kinds of
motion the package's world models imagine (:data:`WINDOW_MOVES`, :data:`FIRST_PERSON_MOTIONS`).

A world model keeps a *state* (the 2-D FERNN's map ``(B, V, C, H, W)``, FloWM-3D's egocentric map, the RSSM's
vector): it **observes** views into it, each after the observer's motion; it **imagines** the views that would
follow a sequence of motions, all at once (a planner's candidates) or one step at a time (an actor that decides as
it goes); it says **what motions it understands** (:class:`Motions`: their shape, the still motion, how an env's
actions and a trajectory file's recorded moves translate into them). :class:`fernn.WorldModel`,
:class:`fernn.WorldModel3D` and :class:`fernn.RSSM` implement it; so can a model of your own, and
:class:`fernn.agents.planning.CEMPlanner`, ``fernn-rl plan`` and ``fernn-rl dream`` take it without knowing its
class (docs/planning.md has a worked example).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


class Motions(Protocol):
    """The motions a world model imagines, and how the world's records become them."""

    #: what they are, for messages (e.g. "window moves (dx, dy)")
    name: str
    #: the shape of one motion: ``(2,)`` for a window move, ``()`` for a motion id
    shape: tuple[int, ...]

    def still(self) -> torch.Tensor:
        """The motion before the first observation (the observer has not moved): a tensor of :attr:`shape`."""

    def check(self, table: torch.Tensor) -> torch.Tensor:
        """``table`` ``(A, *shape)``, one motion per action, as a long tensor; ``ValueError`` naming what is
        accepted if it holds motions this model cannot imagine."""

    def from_recorded(self, moves: torch.Tensor) -> torch.Tensor:
        """The motions ``(..., *shape)`` of the moves ``(..., 2)`` a trajectory file records."""

    def env_table(self, env: Any, name: str) -> np.ndarray:
        """The motion of each of the Gymnasium ``env``'s actions, ``(A, *shape)`` int64; ``ValueError`` if the env
        does not say what its actions do in these terms (``name``: the env's, for the message)."""


@runtime_checkable
class WorldModelProtocol(Protocol):
    """A world model as planners and dreams use it (see the module docstring). Shapes: ``B`` envs, ``T`` observed
    and ``K`` imagined steps, ``M`` = ``motions.shape``, views ``(C, h, w)`` = ``view_shape`` floats in [0, 1]."""

    motions: Motions

    @property
    def view_shape(self) -> tuple[int, int, int]:
        """``(C, h, w)`` of a view."""

    def initial_state(self, batch_size: int, *, device: torch.device | str | None = None) -> torch.Tensor:
        """The state ``(B, ...)`` before anything was observed."""

    def observe(self, views: torch.Tensor, motions: torch.Tensor, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Take in ``views (B, T, C, h, w)``, ``motions[:, t]`` ``(B, T, *M)`` carried out just before view ``t``,
        from ``state`` (``None``: the initial state): ``(predictions (B, T, C, h, w), states (B, T, ...))``, the
        prediction of each view made before it arrived and the state after it."""

    def imagine(self, state: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
        """The views ``(B, K, C, h, w)`` that follow each of ``motions (B, K, *M)`` from ``state (B, ...)``, each
        prediction fed back as the next observation."""

    def imagine_step(self, state: torch.Tensor, motions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One imagined step: the view ``(B, C, h, w)`` after ``motions (B, *M)`` from ``state`` and the state after
        it was taken in as the observation: ``(view, next_state)``."""


class WindowMoves:
    """Integer moves ``(dx, dy)`` of a window over a world (MNIST World): an env says what its actions do with an
    ``action_moves()`` method returning the ``(A, 2)`` table."""

    name = "window moves (dx, dy)"
    shape = (2,)

    def still(self) -> torch.Tensor:
        return torch.zeros(2, dtype=torch.long)

    def check(self, table: torch.Tensor) -> torch.Tensor:
        table = torch.as_tensor(np.asarray(table))
        if table.dim() != 2 or table.shape[1] != 2 or len(table) < 1 or table.is_floating_point():
            raise ValueError(f"moves must be an (A, 2) table of integer (dx, dy) moves, got {table.dtype} shape "
                             f"{tuple(table.shape)}")
        return table.long()

    def from_recorded(self, moves: torch.Tensor) -> torch.Tensor:
        return moves

    def env_table(self, env: Any, name: str) -> np.ndarray:
        from fernn.envs.first_person_world import first_person_geometry
        from fernn.envs.wrappers import declared

        if first_person_geometry(env) is not None:
            raise ValueError(f"{name} is a first-person world (turns and steps), but this world model imagines "
                             f"{self.name}; plan in the env it was trained on")
        table = declared(env, "action_moves")
        if table is None:
            raise ValueError(f"{name} does not say how its actions move the observer: the world model imagines the "
                             "observer's motions, so the env needs an action_moves() method returning the (A, 2) "
                             "table of (dx, dy) window moves per action, as MNISTWorld-v0 has (see docs/planning.md)")
        moves = np.asarray(table(), dtype=np.int64)
        if moves.shape != (env.action_space.n, 2):
            raise ValueError(f"{name}.action_moves() must return shape ({env.action_space.n}, 2); got {moves.shape}")
        return moves


class FirstPersonMotions:
    """A first-person agent's motion ids (:mod:`fernn.egocentric`: 0 turn left, 1 turn right, 2 forward, 3 stay):
    an env says what its actions do by declaring itself a first-person world (:mod:`fernn.envs.first_person_world`);
    a trajectory file records each step's ``(turn, forward)``."""

    name = "first-person motions (0 turn left, 1 turn right, 2 forward, 3 stay)"
    shape = ()

    def still(self) -> torch.Tensor:
        from fernn.egocentric import STAY

        return torch.tensor(STAY)

    def check(self, table: torch.Tensor) -> torch.Tensor:
        table = torch.as_tensor(np.asarray(table))
        if table.dim() != 1 or len(table) < 1 or table.is_floating_point() or table.min() < 0 or table.max() > 3:
            raise ValueError(f"moves of a first-person world model must be an (A,) table of motions 0..3, got "
                             f"{table.tolist()}")
        return table.long()

    def from_recorded(self, moves: torch.Tensor) -> torch.Tensor:
        from fernn.egocentric import motion_ids

        return motion_ids(moves)

    def env_table(self, env: Any, name: str) -> np.ndarray:
        from fernn.envs.first_person_world import first_person_geometry

        geometry = first_person_geometry(env)
        if geometry is None:
            raise ValueError(f"{name} does not declare itself a first-person world, so the planner cannot tell what "
                             "its actions do to the agent: wrap it in fernn.envs.FirstPersonWorld (MiniWorld: "
                             "fernn.envs.miniworld.MiniWorldFirstPerson, or the id "
                             "fernn.envs:MiniWorldFirstPerson-v0) with its actions' (turn, forward), room and field "
                             "of view (docs/your_env.md)")
        return self.from_recorded(torch.as_tensor(np.array(geometry.action_motions))).numpy().astype(np.int64)


#: the motions of :class:`fernn.WorldModel`
WINDOW_MOVES = WindowMoves()
#: the motions of :class:`fernn.WorldModel3D` and :class:`fernn.RSSM`
FIRST_PERSON_MOTIONS = FirstPersonMotions()
