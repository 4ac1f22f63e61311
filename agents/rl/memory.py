"""The FERNN memory of a recurrent policy: a FERNN over image observations, its readout, and the equivariant
actor head.

:class:`FERNNMemory` takes the place of ``nn.LSTM`` inside sb3-contrib's recurrent policy (it exposes what
``RecurrentPPO`` reads: ``num_layers``, ``input_size``, ``hidden_size``), keeps its state flat outside
(``(1, n_envs, V * C * H * W)``) and masks the state on ``episode_start`` itself.

**The equivariant actor.** A target moving with velocity ``u`` is carried by the velocity channel ``v = u``
(with self-motion the channels hold world velocities: the memory is shifted by minus the agent's own move, so a
channel moving like the target keeps it whatever the agent does). Following the target is the move ``u``. So the
logit of an action whose move ``m`` is a velocity of the flow is read from channel ``m``, by one head shared by
every channel (position-aware, like the readout); actions whose move is no velocity get a logit from the pooled
readout. Then shifting the target's velocity by a move ``nu`` relabels the channels (``h[v] -> h[v - nu]``) and so
moves the logits with it: ``logit(m + nu)`` after the shifted sequence equals ``logit(m)`` after the original, an
exact law (tested). A pooled actor is blind to which channel holds the target and does not follow it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fernn import FERNN, TranslationFlow
from fernn.agents.heads import ReadoutHead, VelocityActorHead
from fernn.agents.rl.config import RL_READOUTS
from fernn.envs.wrappers import ACTION_OFFSET
from fernn.flows import Flow
from fernn.models import pool_velocities

#: the heads of the actor: pooled (one readout for every action) or equivariant (see the module docstring)
ACTORS = ("pooled", "equivariant")


class FERNNMemory(nn.Module):
    """The recurrent memory of :class:`~fernn.agents.rl.policies.FERNNRecurrentPolicy`: a FERNN over image
    observations (see the module docstring).

    Args:
        observation_shape: ``(C, H, W)`` of the (channels-first) observations.
        hidden_channels: FERNN hidden channels per velocity channel.
        flow: the velocities (default ``TranslationFlow(2)``, 25 channels).
        out_dim: features handed to the critic (and the pooled actor).
        self_motion: the observations end with the two action channels of
            :class:`fernn.envs.wrappers.ActionChannels`; every step the state is shifted by minus the agent's move
            before its velocity flow (in the same row copy), as in :class:`fernn.WorldModel`.
        readout: ``"max"`` (default) or ``"mean"`` pools the state over the velocity axis before the readout,
            ``"velocities"`` keeps that axis as ``V * C_h`` input channels (each channel's weights its own).
        moves: ``(A, 2)`` window moves of the actions: the equivariant actor (``None``: no actor head here).
        move_scale: what one unit of a move channel is in the preprocessed observation (``1 / 255`` when SB3
            scales images to [0, 1], ``1`` with ``normalize_images=False``): the moves are decoded as
            ``round(value / move_scale) - 128``.
        relaxed: filter banks of an approximately equivariant recurrence (:mod:`fernn.relaxed`; 0: exact sharing).

    The state is ``h (1, n, V * C_h * H * W)`` and a dummy ``c (1, n, 1)`` (the LSTM-shaped pair sb3-contrib
    passes around); ``episode_starts`` zero the state of the envs that start a new episode.
    """

    num_layers = 1

    def __init__(self, observation_shape: tuple[int, int, int], hidden_channels: int = 16, flow: Flow | None = None,
                 out_dim: int = 256, self_motion: bool = False, readout: str = "max",
                 moves: np.ndarray | torch.Tensor | None = None, move_scale: float = 1 / 255,
                 relaxed: int = 0) -> None:
        super().__init__()
        if readout not in RL_READOUTS:
            raise ValueError(f"readout must be one of {', '.join(RL_READOUTS)}; got {readout!r}")
        flow = flow or TranslationFlow(2)
        self.observation_shape = observation_shape
        self.self_motion = bool(self_motion)
        self.readout_mode = readout
        self.move_scale = float(move_scale)
        channels, height, width = observation_shape
        if self.self_motion:
            if channels < 3 or not isinstance(flow, TranslationFlow):
                raise ValueError("self_motion=True needs observations with the two action channels of "
                                 "fernn.envs.wrappers.ActionChannels and a TranslationFlow")
            channels -= 2
        self.rnn = FERNN(channels, hidden_channels, flow, relaxed=relaxed)
        self.state_shape = (self.rnn.num_velocities, self.rnn.state_channels, height, width)
        self.input_size = channels * height * width
        self.hidden_size = int(np.prod(self.state_shape))
        self.out_dim = out_dim
        keeps_velocities = readout == "velocities"
        self.readout = ReadoutHead(self.rnn.state_channels * (self.rnn.num_velocities if keeps_velocities else 1),
                                   height, width, out_dim)
        self.actions = 0
        if moves is not None:
            self.actor_head = VelocityActorHead(flow, moves, self.rnn.state_channels, height, width)
            self.actions = self.actor_head.actions

    def readout_input(self, states: list[torch.Tensor]) -> torch.Tensor:
        """The readout's input ``(n T, C', H, W)`` from ``T`` internal states ``(n, V, H, W, C)``: pooled over the
        velocity axis (``C' = C``), or with the velocity axis kept as channels (``C' = V C``, channel-major)."""
        if self.readout_mode == "velocities":
            return torch.stack([h.permute(0, 1, 4, 2, 3).flatten(1, 2) for h in states], 1).flatten(0, 1)
        pooled = torch.stack([pool_velocities(h, self.readout_mode) for h in states], 1)  # (n, T, H, W, C)
        return pooled.flatten(0, 1).permute(0, 3, 1, 2)

    @property
    def action_channels(self) -> torch.Tensor:
        """``(A,)``: the velocity channel of each action's move, -1 where the move is no velocity."""
        return self.actor_head.action_channels

    def velocity_logits(self, states: list[torch.Tensor]) -> torch.Tensor:
        """``(n T, A)``: each action's logit read from its move's velocity channel by the shared head (0 for the
        actions whose move is no velocity), from ``T`` internal states ``(n, V, H, W, C)``."""
        stacked = torch.stack(states, 1).flatten(0, 1)  # (n T, V, H, W, C)
        return self.actor_head(stacked.permute(0, 1, 4, 2, 3))

    def initial_state(self, n: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(1, n, self.hidden_size, device=device), torch.zeros(1, n, 1, device=device)

    def process(self, features: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor],
                episode_starts: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Run ``n`` sequences of ``T`` steps, env-major.

        Args:
            features: ``(n * T, C * H * W)`` flattened observations (sequence ``i`` is rows ``i T .. i T + T - 1``).
            state: ``(h (1, n, V C_h H W), c)``, the states before the first step.
            episode_starts: ``(n * T,)``; 1 where a new episode starts (the state is zeroed first).

        Returns:
            ``(latent, (h, c))``: ``latent (n * T, out_dim)``, followed by the ``A`` velocity logits of the
            equivariant actor when the memory has one (:meth:`velocity_logits`).
        """
        n = state[0].shape[1]
        core = self.rnn.core
        frames = features.reshape(n, -1, *self.observation_shape)
        steps = frames.shape[1]
        offsets = None
        if self.self_motion:  # the last two channels hold (dx + 128, dy + 128), scaled like the images
            offsets = ACTION_OFFSET - (frames[:, :, -2:, 0, 0] / self.move_scale).round().long()
            frames = frames[:, :, :-2]
        keep = 1.0 - episode_starts.reshape(n, steps).to(features.dtype)
        h = core.state_from_public(state[0][0].reshape(n, *self.state_shape).to(frames.dtype))
        weights = core.weights()
        states, _ = self.rnn.scan(self.rnn.drives(frames, weights), h, weights, offsets=offsets, keep=keep)
        latent = self.readout(self.readout_input(states))
        if self.actions:
            latent = torch.cat([latent, self.velocity_logits(states)], 1)
        public = core.states_to_public(states[-1][:, None])[:, 0]
        return latent, (public.reshape(1, n, -1), state[1])


FERNNCore = FERNNMemory  # the name of the first release
