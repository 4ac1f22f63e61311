"""Heads that read a FERNN's velocity-channel state: the position-aware readout, and the equivariant actor head
that scores each move from the velocity channel of that move (one set of weights shared by every channel).

Used by the RL policies (:mod:`fernn.agents.rl.memory`) and by the actor learned in a world model's imagination
(:mod:`fernn.agents.dream`); plain torch, no Stable-Baselines3.

**The equivariance law.** Shifting every velocity of a scene by a move ``nu`` relabels a FERNN's channels,
``h[v] -> h[v - nu]`` (exactly, for the channels in range). The equivariant head scores the move ``m`` from channel
``m``, so its logit of ``m + nu`` after the shifted scene equals its logit of ``m`` after the original one: the
action distribution moves with the scene's velocity. A head that pools over channels first cannot.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fernn.flows import Flow, TranslationFlow


class ReadoutHead(nn.Module):
    """Maps ``(N, C, H, W)`` -> features ``(N, out_dim)``: two stride-2 convolutions keep *where* things are (a
    tracking policy needs positions), then a linear layer."""

    def __init__(self, channels: int, height: int, width: int, out_dim: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(channels, 32, 3, stride=2, padding=1), nn.ReLU(),
                                   nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, channels, height, width)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, out_dim), nn.ReLU())

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(maps))


def match_moves(flow: Flow, moves: np.ndarray | torch.Tensor | None) -> torch.Tensor:
    """``(A,)``: the velocity channel whose velocity is each action's move, or -1 (an action a pooled head scores).

    Raises:
        ValueError: no table, a table that is not ``(A, 2)`` integers, or no move a velocity of the flow.
    """
    if moves is None:
        raise ValueError("the equivariant actor needs the env's table of moves: an env with action_moves() (the (A, 2) "
                         "window moves (dx, dy) of its actions, in pixels), or moves=[[dx, dy], ...]")
    table = torch.as_tensor(np.asarray(moves))
    if table.dim() != 2 or table.shape[1] != 2 or table.is_floating_point():
        raise ValueError(f"moves must be an (A, 2) table of integer window moves (dx, dy); got {table.tolist()}")
    if not isinstance(flow, TranslationFlow):
        raise ValueError(f"the equivariant actor reads channels of translation velocities; {flow!r} has none")
    matches = (table[:, None, :] == flow.velocities[None]).all(-1)  # (A, V)
    if not matches.any():
        raise ValueError(f"no action's move {table.tolist()} is a velocity of the flow {flow.velocities.tolist()}: the "
                         "equivariant actor scores a move from the channel of that velocity; choose a flow whose "
                         "velocities include the moves (vmax >= the step size), or the pooled actor")
    return torch.where(matches.any(1), matches.float().argmax(1), -1)


class VelocityActorHead(nn.Module):
    """The equivariant actor head: the logit of each action whose move is a velocity of ``flow`` read from that
    velocity channel by one position-aware head shared by all channels (see the module docstring).

    Args:
        flow: the state's velocities.
        moves: ``(A, 2)`` window moves of the actions.
        channels, height, width: ``C, H, W`` of one velocity channel's map.

    Shapes:
        ``forward(states)``: ``(N, V, C, H, W)`` -> logits ``(N, A)``, 0 for the actions whose move is no velocity
        (:attr:`matched` says which are).
    """

    def __init__(self, flow: Flow, moves: np.ndarray | torch.Tensor, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.register_buffer("action_channels", match_moves(flow, moves), persistent=False)
        self.actions = len(self.action_channels)
        self.head = nn.Sequential(ReadoutHead(channels, height, width, 64), nn.Linear(64, 1))

    @property
    def matched(self) -> torch.Tensor:
        """``(A,)`` bool: which actions' moves are velocities (scored here)."""
        return self.action_channels >= 0

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        channels = self.action_channels[self.matched]
        maps = states[:, channels]  # (N, A', C, H, W)
        scores = self.head(maps.flatten(0, 1)).view(states.shape[0], len(channels))
        logits = scores.new_zeros(states.shape[0], self.actions)
        logits[:, self.matched] = scores
        return logits
