"""FERNN as the recurrent memory of sb3-contrib's ``RecurrentPPO``, extended through sb3-contrib's constructors.

* :class:`FERNNRecurrentPolicy` (alias ``"FERNNPolicy"``): sb3-contrib's ``RecurrentActorCriticPolicy``, built by
  its own constructor, with :class:`~fernn.agents.rl.memory.FERNNMemory` in the place of its LSTM; actor and
  critic heads on the memory's readout (the critic pools over velocity channels; the actor pools too, or with
  ``actor="equivariant"`` reads each move's logit from that move's velocity channel).
* :class:`LeanRecurrentRolloutBuffer` keeps only the state at the start of each env's rollout segment, and the
  minibatches are whole envs whose states are recomputed from it with gradients (the CleanRL way): tens of MiB
  instead of one full FERNN state per step (gigabytes).
* :class:`FERNNRecurrentPPO`: ``RecurrentPPO`` whose ``_setup_model`` runs sb3-contrib's own (schedules, checks,
  the Dict-observation buffer for other policies) and then, for a FERNN policy, takes the lean buffer.

**Where sb3-contrib has no seam.** Its policy builds an ``nn.LSTM`` in its constructor and reads it through
attributes; its algorithm sizes the state buffers from that LSTM. What this module sets after sb3-contrib's
constructors is listed in :data:`SB3_CONTRIB_MEMBERS` and set in one place each
(:meth:`FERNNRecurrentPolicy._install_memory`, :meth:`FERNNRecurrentPPO._setup_model`);
``tests/test_sb3.py::test_the_sb3_contrib_members_this_module_relies_on_exist`` fails loudly if a release of
sb3-contrib renames them. The tested range is pinned in ``pyproject.toml``.

One PPO update, step by step (the reader need not open sb3-contrib): ``collect_rollouts`` calls
``policy.forward(obs, states, episode_starts)`` for every env step (the memory steps once, the actor samples,
the critic values) and adds the transition to the buffer, which keeps the states of the first step only;
``train`` then, for ``n_epochs``, draws minibatches of whole envs (:meth:`LeanRecurrentRolloutBuffer.get`) and
calls ``policy.evaluate_actions`` on each, which reruns the memory over the envs' ``n_steps`` from their start
states (resetting at episode starts) with gradients; the clipped policy loss, the value loss and the entropy
bonus are summed, the gradient clipped to ``max_grad_norm`` and Adam steps.
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
from stable_baselines3.common.torch_layers import MlpExtractor
from stable_baselines3.common.utils import FloatSchedule
from torch import nn

from fernn import TranslationFlow
from fernn.agents.rl.extractors import (FERNNFrameStackExtractor, ImagePassThrough, ReadoutHead, SmallCNN,
                                        image_layout)
from fernn.agents.heads import match_moves
from fernn.agents.rl.memory import ACTORS, FERNNCore, FERNNMemory
from fernn.flows import Flow
from fernn.relaxed import check_relaxation, relaxation_penalty

#: what this module sets on sb3-contrib's objects after their constructors (see the module docstring)
SB3_CONTRIB_MEMBERS = {
    RecurrentActorCriticPolicy: ("lstm_actor", "lstm_critic", "critic", "lstm_hidden_state_shape", "shared_lstm",
                                 "enable_critic_lstm", "lstm_output_dim"),
    RecurrentPPO: ("_last_lstm_states", "rollout_buffer", "_setup_lr_schedule", "set_random_seed", "lr_schedule",
                   "use_sde", "clip_range", "clip_range_vf"),
}


class FERNNRecurrentPolicy(RecurrentActorCriticPolicy):
    """sb3-contrib's recurrent actor-critic with :class:`~fernn.agents.rl.memory.FERNNMemory` as its memory.

    Args (beyond SB3's ``ActorCriticPolicy``):
        fernn_hidden: FERNN hidden channels per velocity channel.
        vmax: velocity grid radius of the ``TranslationFlow`` (ignored when ``flow`` is given).
        flow: any :class:`fernn.Flow`.
        features_dim: output of the memory's readout.
        shared_core: one memory for actor and critic, trained by both losses (as SB3 shares a features
            extractor); ``False``: a memory each, each trained by its own head.
        self_motion: shift the memory by the agent's own move (observations from
            :class:`fernn.envs.wrappers.ActionChannels`).
        readout: ``"max"`` | ``"mean"`` | ``"velocities"``: how the readout sees the velocity axis.
        actor: ``"pooled"`` (default: every action's logit from the pooled readout) or ``"equivariant"`` (a move's
            logit from that move's velocity channel; see :mod:`fernn.agents.rl.memory`).
        moves: ``(A, 2)`` window moves of the actions (the env's ``action_moves()``), for the equivariant actor;
            :class:`FERNNRecurrentPPO` reads them from the env when not given.
        relaxed: filter banks of an approximately equivariant recurrence (:mod:`fernn.relaxed`; 0: exact sharing).
        relax_alpha: weight of the relaxation penalty, added to every PPO minibatch's loss gradient
            (:meth:`add_relaxation_penalty`).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule, *,
                 fernn_hidden: int = 16, vmax: int = 2, flow: Flow | None = None, features_dim: int = 256,
                 shared_core: bool = True, self_motion: bool = False, readout: str = "max", actor: str = "pooled",
                 moves: Any = None, relaxed: int = 0, relax_alpha: float = 0.0, use_sde: bool = False, net_arch: list[int] | dict[str, list[int]] | None = None,
                 activation_fn: type[nn.Module] = nn.Tanh, ortho_init: bool = True, normalize_images: bool = True,
                 optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None) -> None:
        if use_sde:
            raise ValueError("use_sde=True (gSDE) is not supported by FERNNRecurrentPolicy; use the default "
                             "Gaussian / categorical action distributions")
        if actor not in ACTORS:
            raise ValueError(f"actor must be one of {', '.join(ACTORS)}; got {actor!r}")
        if actor == "equivariant" and not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"the equivariant actor scores a Discrete table of moves; the action space is {action_space}")
        if actor == "equivariant" and (moves is None or len(moves) != action_space.n):
            match_moves(flow or TranslationFlow(vmax), moves)  # no table: the error says where one comes from
            raise ValueError(f"moves must have one (dx, dy) per action: {action_space.n} rows; got {len(moves)}")
        self.image_shape, _ = image_layout(observation_space, "FERNNRecurrentPolicy", normalized=not normalize_images)
        self.fernn_hidden, self.vmax, self.flow, self.shared_core = fernn_hidden, vmax, flow, shared_core
        self.self_motion, self.readout, self.actor = self_motion, readout, actor
        self.relaxed, self.relax_alpha = check_relaxation(relaxed, relax_alpha, flow or TranslationFlow(vmax))
        self.moves = None if moves is None else np.asarray(moves).tolist()
        self.features_dim_out = features_dim
        super().__init__(observation_space, action_space, lr_schedule,
                         net_arch=net_arch if net_arch is not None else dict(pi=[64], vf=[64]),
                         activation_fn=activation_fn, ortho_init=ortho_init, features_extractor_class=ImagePassThrough,
                         features_extractor_kwargs=dict(normalized_image=not normalize_images),
                         normalize_images=normalize_images, optimizer_class=optimizer_class,
                         optimizer_kwargs=optimizer_kwargs, lstm_hidden_size=1, shared_lstm=False,
                         enable_critic_lstm=False)
        self._install_memory(lr_schedule)

    def _build_mlp_extractor(self) -> None:
        # sb3-contrib sizes the heads by its LSTM (here a placeholder of 1 unit): size them by the memory's readout
        self.mlp_extractor = MlpExtractor(self.features_dim_out, net_arch=self.net_arch,
                                          activation_fn=self.activation_fn, device=self.device)

    def make_memory(self) -> FERNNMemory:
        """A FERNN memory of this policy's settings."""
        return FERNNMemory(self.image_shape, self.fernn_hidden, self.flow or TranslationFlow(self.vmax), self.features_dim_out,
                           self.self_motion, self.readout, self.moves if self.actor == "equivariant" else None,
                           move_scale=1 / 255 if self.normalize_images else 1.0, relaxed=self.relaxed)

    def _install_memory(self, lr_schedule) -> None:
        """The one place where sb3-contrib's LSTM members are replaced (:data:`SB3_CONTRIB_MEMBERS`)."""
        self.lstm_actor = self.make_memory()
        self.lstm_critic = None if self.shared_core else self.make_memory()
        self.critic = None  # sb3-contrib's linear stand-in for a critic without LSTM: the memory serves instead
        self.lstm_output_dim = self.features_dim_out
        self.lstm_hidden_state_shape = (1, 1, self.lstm_actor.hidden_size)
        if self.ortho_init:
            # What SB3 does for its features extractors (orthogonal, gain sqrt 2); the recurrent conv keeps
            # PyTorch's init. With PyTorch's default init everywhere the features came out near 0.01 (sparse
            # frames, a state averaging ~0.03, each layer shrinking it), and PPO did not learn in 60k steps.
            for memory in filter(None, (self.lstm_actor, self.lstm_critic)):
                for module in (memory.rnn.core.conv_in, memory.readout):
                    module.apply(partial(self.init_weights, gain=np.sqrt(2)))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)
        if self.relaxed and self.relax_alpha > 0:
            self.optimizer.register_step_pre_hook(lambda optimizer, args, kwargs: self.add_relaxation_penalty())

    def add_relaxation_penalty(self) -> None:
        """Add ``relax_alpha * relaxation_penalty`` to the gradients, before every optimiser step. sb3-contrib's
        ``train`` builds the PPO loss with no place for an extra term; a pre-step hook of the optimiser (a PyTorch
        API) adds the penalty's gradient to the loss's, after the loss's gradient clipping."""
        (self.relax_alpha * relaxation_penalty(self)).backward()

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in ("log_std_init", "squash_output", "full_std", "use_expln", "features_extractor_class",
                    "features_extractor_kwargs", "share_features_extractor", "lstm_hidden_size", "n_lstm_layers",
                    "shared_lstm", "enable_critic_lstm", "lstm_kwargs"):
            data.pop(key, None)
        data.update(fernn_hidden=self.fernn_hidden, vmax=self.vmax, flow=self.flow, features_dim=self.features_dim_out,
                    shared_core=self.shared_core, self_motion=self.self_motion, readout=self.readout, actor=self.actor,
                    moves=self.moves, relaxed=self.relaxed, relax_alpha=self.relax_alpha,
                    normalize_images=self.normalize_images)
        return data

    @staticmethod
    def _process_sequence(features, lstm_states, episode_starts, lstm):  # noqa: D102 - sb3-contrib hook
        return lstm.process(features, lstm_states, episode_starts)

    def _split(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The memory's output -> (readout features, the equivariant actor's velocity logits or None)."""
        if self.actor == "equivariant":
            return latent[:, :self.features_dim_out], latent[:, self.features_dim_out:]
        return latent, None

    def _distribution_of(self, latent: torch.Tensor):
        """The action distribution of the actor memory's output: the pooled head's logits, and for the equivariant
        actor each velocity move's logit from its channel instead."""
        features, velocity = self._split(latent)
        pooled = self.mlp_extractor.forward_actor(features)
        if velocity is None:
            return self._get_action_dist_from_latent(pooled)
        logits = torch.where(self.lstm_actor.action_channels >= 0, velocity, self.action_net(pooled))
        return self.action_dist.proba_distribution(action_logits=logits)

    def _latents(self, obs: torch.Tensor, states: RNNStates, episode_starts: torch.Tensor):
        features = self.extract_features(obs)
        latent_pi, states_pi = self._process_sequence(features, states.pi, episode_starts, self.lstm_actor)
        if self.shared_core:
            latent_vf, states_vf = latent_pi, states_pi
        else:
            latent_vf, states_vf = self._process_sequence(features, states.vf, episode_starts, self.lstm_critic)
        critic = self.mlp_extractor.forward_critic(self._split(latent_vf)[0])
        return latent_pi, critic, RNNStates(states_pi, states_vf)

    def forward(self, obs, lstm_states, episode_starts, deterministic=False):  # noqa: D102 - SB3 API
        latent_pi, latent_vf, states = self._latents(obs, lstm_states, episode_starts)
        distribution = self._distribution_of(latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), self.value_net(latent_vf), log_prob, states

    def evaluate_actions(self, obs, actions, lstm_states, episode_starts):  # noqa: D102 - SB3 API
        latent_pi, latent_vf, _ = self._latents(obs, lstm_states, episode_starts)
        distribution = self._distribution_of(latent_pi)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def predict_values(self, obs, lstm_states, episode_starts):  # noqa: D102 - SB3 API
        features = self.extract_features(obs)
        memory = self.lstm_actor if self.shared_core else self.lstm_critic
        latent_vf, _ = self._process_sequence(features, lstm_states, episode_starts, memory)
        return self.value_net(self.mlp_extractor.forward_critic(self._split(latent_vf)[0]))

    def get_distribution(self, obs, lstm_states, episode_starts):  # noqa: D102 - SB3 API
        features = self.extract_features(obs)
        latent_pi, states = self._process_sequence(features, lstm_states, episode_starts, self.lstm_actor)
        return self._distribution_of(latent_pi), states

    def action_logits(self, obs: torch.Tensor, lstm_states: tuple[torch.Tensor, torch.Tensor],
                      episode_starts: torch.Tensor) -> torch.Tensor:
        """The actor's logits ``(n * T, A)`` for ``n`` sequences of ``T`` observations (env-major)."""
        distribution, _ = self.get_distribution(obs, lstm_states, episode_starts)
        return distribution.distribution.logits

    def extract_features(self, obs, features_extractor=None):  # noqa: D102 - SB3 API
        return super().extract_features(obs, self.features_extractor)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        """As sb3-contrib's, with the FERNN state: ``state`` is the ``(h, c)`` pair returned by the
        previous call (``None``: zeros)."""
        if state is None:
            observation_batch, _ = self.obs_to_tensor(observation)
            h, c = self.lstm_actor.initial_state(observation_batch.shape[0])
            state = (h.numpy(), c.numpy())
        return super().predict(observation, state, episode_start, deterministic)


class LeanRecurrentRolloutBuffer(RecurrentRolloutBuffer):
    """A ``RecurrentRolloutBuffer`` that stores the recurrent state only at the start of each env's rollout
    segment; minibatches are whole envs (``batch_size // n_steps`` of them), whose states are recomputed from that
    start state (with resets at episode starts) during training. sb3-contrib's per-step state arrays are kept one
    number wide (they are filled with zeros)."""

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 device: torch.device | str = "auto", gae_lambda: float = 1, gamma: float = 0.99,
                 n_envs: int = 1) -> None:
        super().__init__(buffer_size, observation_space, action_space, (buffer_size, 1, n_envs, 1), device,
                         gae_lambda, gamma, n_envs)
        self.start_states: RNNStates | None = None

    def add(self, *args, lstm_states: RNNStates, **kwargs) -> None:
        if self.pos == 0:
            pi = tuple(s.detach().clone() for s in lstm_states.pi)
            shared = lstm_states.vf[0] is lstm_states.pi[0]
            self.start_states = RNNStates(pi, pi if shared else tuple(s.detach().clone() for s in lstm_states.vf))
        placeholder = torch.zeros(1, self.n_envs, 1)
        super().add(*args, lstm_states=RNNStates((placeholder, placeholder), (placeholder, placeholder)), **kwargs)

    def nbytes(self) -> int:
        """Bytes held: the transitions (observations, actions, ...) and the start states."""
        arrays = [getattr(self, name) for name in ("observations", "actions", "rewards", "returns", "episode_starts",
                                                   "values", "log_probs", "advantages")]
        states = [] if self.start_states is None else list(self.start_states.pi) + (
            [] if self.start_states.vf[0] is self.start_states.pi[0] else list(self.start_states.vf))
        return sum(a.nbytes for a in arrays) + sum(s.numel() * s.element_size() for s in states)

    def get(self, batch_size: int | None = None) -> Generator[RecurrentRolloutBufferSamples, None, None]:
        if not self.full:
            raise RuntimeError("the rollout buffer must be full before sampling from it")
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
    """``RecurrentPPO`` with the lean rollout buffer for FERNN policies (see :class:`LeanRecurrentRolloutBuffer`)
    and ``"FERNNPolicy"`` as a policy alias: ``FERNNRecurrentPPO("FERNNPolicy", env, policy_kwargs=...)``.
    ``batch_size`` counts transitions, so a minibatch is ``batch_size // n_steps`` whole envs. The equivariant
    actor (``policy_kwargs=dict(actor="equivariant")``) takes its table of moves from the env's
    ``action_moves()`` unless ``moves`` is given."""

    policy_aliases = {**RecurrentPPO.policy_aliases, "FERNNPolicy": FERNNRecurrentPolicy}

    def _setup_model(self) -> None:
        if self.policy_kwargs.get("actor") == "equivariant" and self.policy_kwargs.get("moves") is None:
            self.policy_kwargs["moves"] = env_moves(self.env)
        if not (isinstance(self.policy_class, type) and issubclass(self.policy_class, FERNNRecurrentPolicy)):
            super()._setup_model()  # another recurrent policy: sb3-contrib's setup and buffer as they are
            return
        # sb3-contrib's RecurrentPPO._setup_model, step for step, except its rollout buffer: it would first allocate
        # one recurrent state per step (n_steps x n_envs x the flat FERNN state, four arrays; gigabytes at the
        # default sizes) only for the lean buffer, which keeps each env's start state, to replace it
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(self.observation_space, self.action_space, self.lr_schedule,
                                        use_sde=self.use_sde, **self.policy_kwargs).to(self.device)
        memory = self.policy.lstm_actor
        pi = memory.initial_state(self.n_envs, self.device)
        vf = pi if self.policy.shared_core else memory.initial_state(self.n_envs, self.device)
        self._last_lstm_states = RNNStates(pi, vf)
        self.rollout_buffer = LeanRecurrentRolloutBuffer(self.n_steps, self.observation_space, self.action_space,
                                                         self.device, gae_lambda=self.gae_lambda, gamma=self.gamma,
                                                         n_envs=self.n_envs)
        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)


def env_moves(env) -> list[list[int]]:
    """The ``(A, 2)`` window moves of a VecEnv's actions (its first env's ``action_moves()``), or the error of an
    env without them."""
    try:
        return np.asarray(env.env_method("action_moves", indices=[0])[0]).tolist()
    except (AttributeError, NotImplementedError) as error:
        raise ValueError("the equivariant actor needs the env's table of moves: this env has no action_moves() (the "
                         "(A, 2) window moves of its actions); pass policy_kwargs=dict(moves=[[dx, dy], ...])") from error


__all__ = ["FERNNCore", "FERNNMemory", "FERNNFrameStackExtractor", "FERNNRecurrentPolicy", "FERNNRecurrentPPO",
           "ImagePassThrough", "LeanRecurrentRolloutBuffer", "ReadoutHead", "SB3_CONTRIB_MEMBERS", "SmallCNN",
           "env_moves", "image_layout"]
