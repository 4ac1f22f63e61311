"""The networks of learning in imagination: the actor-critic that reads the world model's map, and the
policy that acts with it in a real env."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fernn import WorldModel
from fernn.agents.heads import ReadoutHead, VelocityActorHead
from fernn.agents.planning import CEMPlanner

class ImaginationActorCritic(nn.Module):
    """The actor (:class:`~fernn.agents.heads.VelocityActorHead` on the world model's map, with a pooled head for
    the moves that are no velocity) and the critic (a head on the velocity-pooled map).

    Shapes: ``maps (N, V, C, H, W)`` -> logits ``(N, A)``, values ``(N,)``.
    """

    def __init__(self, world_model: WorldModel, moves: np.ndarray, width: int = 64) -> None:
        super().__init__()
        channels, (height, world_w) = world_model.rnn.state_channels, world_model.world_hw
        self.velocity = VelocityActorHead(world_model.flow, moves, channels, height, world_w)
        self.pooled = nn.Sequential(ReadoutHead(channels, height, world_w, width), nn.Linear(width, len(moves)))
        self.critic = nn.Sequential(ReadoutHead(channels, height, world_w, width), nn.Linear(width, 1))

    def logits(self, maps: torch.Tensor) -> torch.Tensor:
        velocity = self.velocity(maps)
        if bool(self.velocity.matched.all()):
            return velocity
        return torch.where(self.velocity.matched, velocity, self.pooled(maps.amax(1)))

    def value(self, maps: torch.Tensor) -> torch.Tensor:
        return self.critic(maps.amax(1)).squeeze(-1)


class ImaginedPolicy(CEMPlanner):
    """The learned actor acting in a real env: the world model's map carried and observed as the planner does
    (:meth:`CEMPlanner.observe`), then one pass of the actor (its most likely move) instead of a search."""

    def __init__(self, world_model: WorldModel, moves: np.ndarray, agent: ImaginationActorCritic) -> None:
        super().__init__(world_model, moves, horizon=1, candidates=1, iterations=1, elites=1)
        self.agent = agent.eval()

    @torch.no_grad()
    def plan(self, maps: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        return self.agent.logits(maps).argmax(-1).cpu()
