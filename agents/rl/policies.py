"""FERNN as a recurrent policy encoder in Stable-Baselines3 / sb3-contrib.

* :class:`FERNNCore` replaces ``nn.LSTM`` inside sb3-contrib's recurrent policy: it exposes what
  ``RecurrentPPO`` expects (``num_layers``, ``input_size``, ``hidden_size``), keeps its state flat
  outside (``(1, n_envs, V * C * H * W)``) and masks the state on ``episode_start`` itself.
* :class:`FERNNRecurrentPolicy` (alias ``"FERNNPolicy"``): actor and critic heads on the FERNN
  features, with one shared core (default; both losses train it) or separate cores.
* :class:`LeanRecurrentRolloutBuffer` keeps only the state at the start of each env's rollout segment
  and :class:`FERNNRecurrentPPO` recomputes the states with gradients in minibatches of whole envs
  (the CleanRL way): tens of MiB instead of one full state per step.
* :class:`SmallCNN` (a CNN extractor for 32x32 windows, which SB3's ``NatureCNN`` cannot take) and
  :class:`FERNNFrameStackExtractor` (the FERNN over a ``VecFrameStack`` in one forward pass) serve
  plain SB3 algorithms (PPO, A2C, DQN) and the CNN-LSTM baseline.

Observations are SB3 images: ``uint8 (H, W, C)`` envs, transposed to ``(C, H, W)`` by SB3's
``VecTransposeImage`` and scaled to [0, 1] by its preprocessing.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.buffers import RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RecurrentRolloutBufferSamples, RNNStates
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import FloatSchedule
from torch import nn

from fernn import FERNN, TranslationFlow
from fernn.agents.rl.config import RL_READOUTS
from fernn.agents.rl.extractors import (FERNNFrameStackExtractor, ImagePassThrough, ReadoutHead, SmallCNN,
                                        image_layout)
from fernn.flows import Flow
from fernn.models import pool_velocities


class FERNNCore(nn.Module):
    """The recurrent core of :class:`FERNNRecurrentPolicy`: a FERNN over image observations.

    Args:
        observation_shape: ``(C, H, W)`` of the (channels-first) observations.
        hidden_channels: FERNN hidden channels per velocity channel.
        flow: the velocities (default ``TranslationFlow(2)``, 25 channels).
        out_dim: features handed to the actor / critic networks.

        self_motion: the observations end with the two action channels of
            :class:`fernn.envs.wrappers.ActionChannels`; every step the state is shifted by minus the
            agent's move before its velocity flow (in the same row copy), as in :class:`fernn.WorldModel`
            (here on a window-sized, wrapping state).
        readout: what the readout convolutions see of the state: ``"max"`` (default) or ``"mean"`` pools it over
            the velocity axis (the features are then blind to which channel holds what), ``"velocities"`` keeps
            that axis as ``V * C_h`` input channels (a target remembered in one channel is not diluted by the
            others' copies; the first convolution has V times the weights, and each channel's are its own, so a
            channel that never carried a target in training is not read as one: docs/rl.md measures both sides).

    The state is ``h (1, n, V * C_h * H * W)`` and a dummy ``c (1, n, 1)`` (the LSTM-shaped pair
    sb3-contrib passes around); ``episode_starts`` zero the state of the envs that start a new episode.
    """

    num_layers = 1

    def __init__(self, observation_shape: tuple[int, int, int], hidden_channels: int = 16, flow: Flow | None = None,
                 out_dim: int = 256, self_motion: bool = False, readout: str = "max") -> None:
        super().__init__()
        if readout not in RL_READOUTS:
            raise ValueError(f"readout must be one of {', '.join(RL_READOUTS)}; got {readout!r}")
        self.observation_shape = observation_shape
        self.self_motion = bool(self_motion)
        self.readout_mode = readout
        channels, height, width = observation_shape
        if self.self_motion:
            if channels < 3 or not isinstance(flow or TranslationFlow(2), TranslationFlow):
                raise ValueError("self_motion=True needs observations with the two action channels of "
                                 "fernn.envs.wrappers.ActionChannels and a TranslationFlow")
            channels -= 2
        self.rnn = FERNN(channels, hidden_channels, flow or TranslationFlow(2))
        self.state_shape = (self.rnn.num_velocities, self.rnn.state_channels, height, width)
        self.input_size = channels * height * width
        self.hidden_size = int(np.prod(self.state_shape))
        self.out_dim = out_dim
        keeps_velocities = readout == "velocities"
        self.readout = ReadoutHead(self.rnn.state_channels * (self.rnn.num_velocities if keeps_velocities else 1),
                                   height, width, out_dim)

    def readout_input(self, states: list[torch.Tensor]) -> torch.Tensor:
        """The readout's input ``(n T, C', H, W)`` from ``T`` internal states ``(n, V, H, W, C)``: pooled over the
        velocity axis (``C' = C``), or with the velocity axis kept as channels (``C' = V C``, channel-major)."""
        if self.readout_mode == "velocities":
            return torch.stack([h.permute(0, 1, 4, 2, 3).flatten(1, 2) for h in states], 1).flatten(0, 1)
        pooled = torch.stack([pool_velocities(h, self.readout_mode) for h in states], 1)  # (n, T, H, W, C)
        return pooled.flatten(0, 1).permute(0, 3, 1, 2)

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
            ``(latent (n * T, out_dim), (h, c))``.
        """
        n = state[0].shape[1]
        core = self.rnn.core
        frames = features.reshape(n, -1, *self.observation_shape)
        steps = frames.shape[1]
        offsets = None
        if self.self_motion:  # the last two channels hold (dx + 128, dy + 128) / 255 of the applied move
            offsets = 128 - (frames[:, :, -2:, 0, 0] * 255).round().long()
            frames = frames[:, :, :-2]
        keep = 1.0 - episode_starts.reshape(n, steps).to(features.dtype)
        h = core.state_from_public(state[0][0].reshape(n, *self.state_shape).to(frames.dtype))
        weights = core.weights()
        states, _ = self.rnn.scan(self.rnn.drives(frames, weights), h, weights, offsets=offsets, keep=keep)
        latent = self.readout(self.readout_input(states))
        public = core.states_to_public(states[-1][:, None])[:, 0]
        return latent, (public.reshape(1, n, -1), state[1])


class FERNNRecurrentPolicy(RecurrentActorCriticPolicy):
    """sb3-contrib's recurrent actor-critic with :class:`FERNNCore` instead of ``nn.LSTM``.

    Args (beyond SB3's ``ActorCriticPolicy``):
        fernn_hidden: FERNN hidden channels per velocity channel.
        vmax: velocity grid radius of the ``TranslationFlow`` (ignored when ``flow`` is given).
        flow: any :class:`fernn.Flow`.
        features_dim: output of the core's readout.
        shared_core: one core for actor and critic, trained by both losses (as SB3 shares a features
            extractor); ``False``: separate cores, each trained by its own head.
        self_motion: shift the memory by the agent's own move (observations from
            :class:`fernn.envs.wrappers.ActionChannels`), see :class:`FERNNCore`.
        readout: ``"max"`` | ``"mean"`` | ``"velocities"``: how the readout sees the velocity axis, see
            :class:`FERNNCore`.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule, *,
                 fernn_hidden: int = 16, vmax: int = 2, flow: Flow | None = None, features_dim: int = 256,
                 shared_core: bool = True, self_motion: bool = False, readout: str = "max", use_sde: bool = False,
                 net_arch: list[int] | dict[str, list[int]] | None = None,
                 activation_fn: type[nn.Module] = nn.Tanh, ortho_init: bool = True, normalize_images: bool = True,
                 optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None) -> None:
        if use_sde:
            raise ValueError("use_sde=True (gSDE) is not supported by FERNNRecurrentPolicy; use the default "
                             "Gaussian / categorical action distributions")
        shape, _ = image_layout(observation_space, "FERNNRecurrentPolicy", normalized=not normalize_images)
        self.fernn_hidden, self.vmax, self.flow, self.shared_core = fernn_hidden, vmax, flow, shared_core
        self.self_motion, self.readout = self_motion, readout
        self.lstm_output_dim = features_dim
        ActorCriticPolicy.__init__(self, observation_space, action_space, lr_schedule,
                                   net_arch=net_arch if net_arch is not None else dict(pi=[64], vf=[64]),
                                   activation_fn=activation_fn, ortho_init=ortho_init,
                                   features_extractor_class=ImagePassThrough, normalize_images=normalize_images,
                                   features_extractor_kwargs=dict(normalized_image=not normalize_images),
                                   optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs)
        make = lambda: FERNNCore(shape, fernn_hidden, flow or TranslationFlow(vmax), features_dim,  # noqa: E731
                                 self_motion, readout)
        self.lstm_actor = make()
        self.lstm_critic = None if shared_core else make()
        if ortho_init:
            # What SB3 does for its features extractors (orthogonal, gain sqrt 2); the recurrent conv keeps
            # PyTorch's init. With PyTorch's default init everywhere the features came out near 0.01 (sparse
            # frames, a state averaging ~0.03, each layer shrinking it), and PPO did not learn in 60k steps.
            for core in filter(None, (self.lstm_actor, self.lstm_critic)):
                for module in (core.rnn.core.conv_in, core.readout):
                    module.apply(partial(self.init_weights, gain=np.sqrt(2)))
        self.shared_lstm, self.enable_critic_lstm, self.critic = shared_core, not shared_core, None
        self.lstm_kwargs = {}
        self.lstm_hidden_state_shape = (1, 1, self.lstm_actor.hidden_size)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = ActorCriticPolicy._get_constructor_parameters(self)
        for key in ("log_std_init", "squash_output", "full_std", "use_expln", "features_extractor_class",
                    "features_extractor_kwargs"):
            data.pop(key, None)
        data.update(fernn_hidden=self.fernn_hidden, vmax=self.vmax, flow=self.flow, features_dim=self.lstm_output_dim,
                    shared_core=self.shared_core, self_motion=self.self_motion, readout=self.readout,
                    normalize_images=self.normalize_images)
        return data

    @staticmethod
    def _process_sequence(features, lstm_states, episode_starts, lstm):  # noqa: D102 - sb3-contrib hook
        return lstm.process(features, lstm_states, episode_starts)

    def _latents(self, obs: torch.Tensor, states: RNNStates, episode_starts: torch.Tensor):
        features = self.extract_features(obs)
        latent_pi, states_pi = self._process_sequence(features, states.pi, episode_starts, self.lstm_actor)
        if self.shared_core:
            latent_vf, states_vf = latent_pi, states_pi
        else:
            latent_vf, states_vf = self._process_sequence(features, states.vf, episode_starts, self.lstm_critic)
        return self.mlp_extractor.forward_actor(latent_pi), self.mlp_extractor.forward_critic(latent_vf), \
            RNNStates(states_pi, states_vf)

    def forward(self, obs, lstm_states, episode_starts, deterministic=False):  # noqa: D102 - SB3 API
        latent_pi, latent_vf, states = self._latents(obs, lstm_states, episode_starts)
        distribution = self._get_action_dist_from_latent(latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), self.value_net(latent_vf), log_prob, states

    def evaluate_actions(self, obs, actions, lstm_states, episode_starts):  # noqa: D102 - SB3 API
        latent_pi, latent_vf, _ = self._latents(obs, lstm_states, episode_starts)
        distribution = self._get_action_dist_from_latent(latent_pi)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def predict_values(self, obs, lstm_states, episode_starts):  # noqa: D102 - SB3 API
        features = self.extract_features(obs)
        core = self.lstm_actor if self.shared_core else self.lstm_critic
        latent_vf, _ = self._process_sequence(features, lstm_states, episode_starts, core)
        return self.value_net(self.mlp_extractor.forward_critic(latent_vf))

    def get_distribution(self, obs, lstm_states, episode_starts):  # noqa: D102 - SB3 API
        features = self.extract_features(obs)
        latent_pi, states = self._process_sequence(features, lstm_states, episode_starts, self.lstm_actor)
        return self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(latent_pi)), states

    def extract_features(self, obs, features_extractor=None):  # noqa: D102 - SB3 API
        return ActorCriticPolicy.extract_features(self, obs, self.features_extractor)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        """As sb3-contrib's, with the FERNN state: ``state`` is the ``(h, c)`` pair returned by the
        previous call (``None``: zeros)."""
        if state is None:
            observation_batch, _ = self.obs_to_tensor(observation)
            h, c = self.lstm_actor.initial_state(observation_batch.shape[0])
            state = (h.numpy(), c.numpy())
        return super().predict(observation, state, episode_start, deterministic)


class LeanRecurrentRolloutBuffer(RecurrentRolloutBuffer):
    """A ``RecurrentRolloutBuffer`` that stores the recurrent state only at the start of each env's
    rollout segment; minibatches are whole envs (``batch_size // n_steps`` of them), whose states are
    recomputed from that start state (with resets at episode starts) during training."""

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 device: torch.device | str = "auto", gae_lambda: float = 1, gamma: float = 0.99,
                 n_envs: int = 1) -> None:
        super().__init__(buffer_size, observation_space, action_space, (1, 1, 1, 1), device, gae_lambda, gamma, n_envs)

    def reset(self) -> None:
        super(RecurrentRolloutBuffer, self).reset()
        self.start_states = None

    def add(self, *args, lstm_states: RNNStates, **kwargs) -> None:
        if self.pos == 0:
            pi = tuple(s.detach().clone() for s in lstm_states.pi)
            shared = lstm_states.vf[0] is lstm_states.pi[0]
            self.start_states = RNNStates(pi, pi if shared else tuple(s.detach().clone() for s in lstm_states.vf))
        super(RecurrentRolloutBuffer, self).add(*args, **kwargs)

    def nbytes(self) -> int:
        """Bytes held: the transitions (observations, actions, ...) and the start states."""
        arrays = [getattr(self, name) for name in ("observations", "actions", "rewards", "returns", "episode_starts",
                                                   "values", "log_probs", "advantages")]
        states = [] if self.start_states is None else list(self.start_states.pi) + (
            [] if self.start_states.vf[0] is self.start_states.pi[0] else list(self.start_states.vf))
        return sum(a.nbytes for a in arrays) + sum(s.numel() * s.element_size() for s in states)

    def get(self, batch_size: int | None = None) -> Generator[RecurrentRolloutBufferSamples, None, None]:
        assert self.full, "Rollout buffer must be full before sampling from it"
        envs_per_batch = self.n_envs if batch_size is None else max(1, batch_size // self.buffer_size)
        order = np.random.permutation(self.n_envs)
        for first in range(0, self.n_envs, envs_per_batch):
            yield self._env_samples(order[first:first + envs_per_batch])

    def _env_samples(self, envs: np.ndarray) -> RecurrentRolloutBufferSamples:
        def take(array: np.ndarray) -> torch.Tensor:  # (n_steps, n_envs, ...) -> (len(envs) * n_steps, ...)
            picked = array[:, envs].swapaxes(0, 1)
            return self.to_torch(picked.reshape(-1, *array.shape[2:]))

        index = torch.as_tensor(envs, device=self.start_states.pi[0].device)
        states = RNNStates(tuple(s[:, index] for s in self.start_states.pi), tuple(s[:, index] for s in self.start_states.vf))
        count = len(envs) * self.buffer_size
        return RecurrentRolloutBufferSamples(
            observations=take(self.observations), actions=take(self.actions), old_values=take(self.values).flatten(),
            old_log_prob=take(self.log_probs).flatten(), advantages=take(self.advantages).flatten(),
            returns=take(self.returns).flatten(), lstm_states=states,
            episode_starts=take(self.episode_starts).flatten(), mask=torch.ones(count, device=self.device))


class FERNNRecurrentPPO(RecurrentPPO):
    """``RecurrentPPO`` with the lean rollout buffer (see :class:`LeanRecurrentRolloutBuffer`) and
    ``"FERNNPolicy"`` as a policy alias: ``FERNNRecurrentPPO("FERNNPolicy", env, policy_kwargs=...)``.
    ``batch_size`` counts transitions, so a minibatch is ``batch_size // n_steps`` whole envs."""

    policy_aliases = {**RecurrentPPO.policy_aliases, "FERNNPolicy": FERNNRecurrentPolicy}

    def _setup_model(self) -> None:
        # RecurrentPPO._setup_model would allocate the per-step state buffer first: build ours directly.
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(self.observation_space, self.action_space, self.lr_schedule,
                                        use_sde=self.use_sde, **self.policy_kwargs)
        self.policy = self.policy.to(self.device)
        if not isinstance(self.policy, RecurrentActorCriticPolicy):
            raise ValueError("FERNNRecurrentPPO needs a recurrent policy (FERNNPolicy, MlpLstmPolicy, CnnLstmPolicy)")
        core = self.policy.lstm_actor
        if isinstance(core, FERNNCore):
            pi = core.initial_state(self.n_envs, self.device)
            vf = pi if self.policy.shared_core else core.initial_state(self.n_envs, self.device)
        else:
            shape = (core.num_layers, self.n_envs, core.hidden_size)
            pi = (torch.zeros(shape, device=self.device), torch.zeros(shape, device=self.device))
            vf = (torch.zeros(shape, device=self.device), torch.zeros(shape, device=self.device))
        self._last_lstm_states = RNNStates(pi, vf)
        self.rollout_buffer = LeanRecurrentRolloutBuffer(self.n_steps, self.observation_space, self.action_space,
                                                         self.device, gae_lambda=self.gae_lambda, gamma=self.gamma,
                                                         n_envs=self.n_envs)
        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)


__all__ = ["FERNNCore", "FERNNFrameStackExtractor", "FERNNRecurrentPolicy", "FERNNRecurrentPPO",
           "ImagePassThrough", "LeanRecurrentRolloutBuffer", "ReadoutHead", "SmallCNN", "image_layout"]
