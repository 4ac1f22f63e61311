"""The networks of learning in imagination: the actor-critic that reads the world model's state, and the
policy that acts with it in a real env."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from fernn.flows import TranslationFlow
from fernn.imagination import WorldModelProtocol
from fernn.agents.heads import ReadoutHead, VelocityActorHead
from fernn.agents.planning import ModelPolicy, ModelTracker


def state_reader(state_shape: tuple[int, ...], width: int) -> nn.Module:
    """Features ``(N, width)`` of states ``(N, *state_shape)``: the position-aware :class:`ReadoutHead` for a map
    ``(C, H, W)`` (a velocity-channel map is pooled over its channels first, by the caller), two layers for any
    other state (flattened)."""
    if len(state_shape) == 3:
        return ReadoutHead(*state_shape, width)
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(state_shape), width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU())


class ImaginationActorCritic(nn.Module):
    """The actor and the critic learned in a world model's imagination, reading its state.

    For a map of translation velocity channels ``(V, C, H, W)`` (:class:`fernn.WorldModel`'s) the actor is the
    equivariant :class:`~fernn.agents.heads.VelocityActorHead`, with a pooled head for the moves that are no
    velocity, and the critic reads the velocity-pooled map; any other state (FloWM-3D's egocentric map, the RSSM's
    vector, a user model's) is read by :func:`state_reader`, a velocity axis pooled first.

    Shapes: ``states (N, *state_shape)`` -> logits ``(N, A)``, values ``(N,)``.
    """

    def __init__(self, world_model: WorldModelProtocol, moves: np.ndarray, width: int = 64) -> None:
        super().__init__()
        state_shape = tuple(world_model.initial_state(1, device="cpu").shape[1:])
        self.pools_velocities = len(state_shape) == 4  # (V, C, H, W): velocity channels, pooled for the heads
        pooled_shape = state_shape[1:] if self.pools_velocities else state_shape
        flow = getattr(world_model, "flow", None)
        reads_velocities = self.pools_velocities and isinstance(flow, TranslationFlow) and \
            world_model.motions.shape == (2,)  # a map of translation velocities, actions that are window moves
        self.velocity = VelocityActorHead(flow, moves, *pooled_shape) if reads_velocities else None
        self.pooled = nn.Sequential(state_reader(pooled_shape, width), nn.Linear(width, len(moves)))
        self.critic = nn.Sequential(state_reader(pooled_shape, width), nn.Linear(width, 1))

    def _pool(self, states: torch.Tensor) -> torch.Tensor:
        return states.amax(1) if self.pools_velocities else states

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        if self.velocity is None:
            return self.pooled(self._pool(states))
        velocity = self.velocity(states)
        if bool(self.velocity.matched.all()):
            return velocity
        return torch.where(self.velocity.matched, velocity, self.pooled(self._pool(states)))

    def value(self, states: torch.Tensor) -> torch.Tensor:
        return self.critic(self._pool(states)).squeeze(-1)


class ImaginedPolicy(ModelPolicy):
    """The learned actor acting in a real env: the world model's state carried and observed as a planner's is
    (:class:`~fernn.agents.planning.ModelTracker`), then one pass of the actor (its most likely move) instead of a
    search."""

    horizon = 1

    def __init__(self, world_model: WorldModelProtocol, moves: np.ndarray, agent: ImaginationActorCritic) -> None:
        self.tracker = ModelTracker(world_model)
        self.moves = world_model.motions.check(moves)
        self.agent = agent.eval()

    def moves_of(self, actions: torch.Tensor) -> torch.Tensor:
        return self.moves[actions]

    @torch.no_grad()
    def plan(self, states: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        return self.agent.logits(states).argmax(-1).cpu()
