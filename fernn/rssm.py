"""A DreamerV3-style recurrent state-space model (RSSM): the non-equivariant world-model baseline of FloWM.

The state is a deterministic GRU state ``h`` and a stochastic state ``z`` of ``stoch`` categorical variables with
``classes`` classes each (one-hot samples, straight-through gradients, 1% uniform mixed into the probabilities as
DreamerV3 does). One step, for the view ``o_t`` after the action ``a_t``::

    h_t   = GRU(h_{t-1}, [z_{t-1}, onehot(a_t)])
    prior = p(z_t | h_t)               what the model expects before seeing o_t
    post  = q(z_t | h_t, enc(o_t))     what it believes after
    pred  = dec(h_t, z_t ~ prior)      the view predicted before it arrives (free running: z from the prior)

Trained on the same pixel loss as the other world models (:meth:`rollout`'s predictions against the true views),
plus its own ELBO on the observed views (:meth:`elbo_loss`: reconstruction from the posterior and the KL between
posterior and prior with DreamerV3's balancing, 0.5 / 0.1, and one free nat). Nothing in it knows about space,
motion or the camera: it is what FloWM's equivariant map is measured against.

The API is :class:`fernn.WorldModel3D`'s: ``forward``, ``rollout``, ``imagine``; its state is a flat ``(B, H + S K)``
tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fernn._validation import check_action_sequence, check_float_tensor, check_int, check_views
from fernn.core import Feedback
from fernn.imagination import FIRST_PERSON_MOTIONS

UNIMIX = 0.01
FREE_NATS = 1.0


class RSSM(nn.Module):
    """A small RSSM over square RGB views (see the module docstring).

    Args:
        in_channels: view channels.
        view_size: view side (a multiple of 16: four stride-2 convolutions).
        actions: number of discrete actions.
        deterministic: GRU size ``H``.
        stoch, classes: the categorical state (``S`` variables of ``K`` classes).
        width: channels of the first encoder convolution (doubling after each stride, up to ``4 width``); the
            encoder halves the view down to 2 x 2, the decoder mirrors it.
    """

    def __init__(self, in_channels: int = 3, view_size: int = 64, actions: int = 4, *, deterministic: int = 64,
                 stoch: int = 8, classes: int = 8, width: int = 6) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.view_size = check_int("view_size", view_size, minimum=8)
        if self.view_size & (self.view_size - 1):
            raise ValueError(f"view_size must be a power of two (the encoder halves it down to 2 x 2), got {view_size}")
        self.actions = check_int("actions", actions, minimum=1)
        self.deterministic, self.stoch, self.classes = deterministic, stoch, classes
        widths = [width * min(2 ** i, 4) for i in range(self.view_size.bit_length() - 2)]
        layers, previous = [], in_channels
        for channels in widths:
            layers += [nn.Conv2d(previous, channels, 4, stride=2, padding=1), nn.ReLU()]
            previous = channels
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.bottom = 2
        embed = widths[-1] * self.bottom ** 2
        latent = stoch * classes
        self.inputs = nn.Sequential(nn.Linear(latent + actions, deterministic), nn.ELU())
        self.gru = nn.GRUCell(deterministic, deterministic)
        self.prior = nn.Sequential(nn.Linear(deterministic, deterministic), nn.ELU(), nn.Linear(deterministic, latent))
        self.posterior = nn.Sequential(nn.Linear(deterministic + embed, deterministic), nn.ELU(),
                                       nn.Linear(deterministic, latent))
        self.decoder_input = nn.Linear(deterministic + latent, widths[-1] * self.bottom ** 2)
        layers = []
        for channels, out in zip(widths[::-1], widths[::-1][1:] + [width]):
            layers += [nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*layers, nn.Conv2d(width, in_channels, 3, padding=1))
        self.top = widths[-1]

    #: the actions are the block world's first-person motions (any discrete actions work the same)
    motion_kind = "first-person"
    #: the motions it imagines (:class:`fernn.imagination.WorldModelProtocol`)
    motions = FIRST_PERSON_MOTIONS

    @property
    def view_shape(self) -> tuple[int, int, int]:
        """``(C, view, view)`` of an observation."""
        return (self.in_channels, self.view_size, self.view_size)

    @property
    def state_size(self) -> int:
        return self.deterministic + self.stoch * self.classes

    def initial_state(self, batch_size: int, *, device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The zero state ``(B, H + S K)``."""
        return torch.zeros(batch_size, self.state_size, device=device, dtype=dtype)

    # -- the cell ------------------------------------------------------------------------------------------------
    def _distribution(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(B, S, K)`` with 1% uniform mixed in."""
        probabilities = logits.view(-1, self.stoch, self.classes).softmax(-1)
        return (1 - UNIMIX) * probabilities + UNIMIX / self.classes

    def _sample(self, probabilities: torch.Tensor) -> torch.Tensor:
        """One-hot samples ``(B, S K)`` with straight-through gradients."""
        index = torch.multinomial(probabilities.reshape(-1, self.classes), 1).view(probabilities.shape[:2])
        one_hot = F.one_hot(index, self.classes).to(probabilities.dtype)
        return (one_hot + probabilities - probabilities.detach()).flatten(1)

    def _advance(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        h, z = state[:, :self.deterministic], state[:, self.deterministic:]
        a = F.one_hot(action, self.actions).to(state.dtype)
        return self.gru(self.inputs(torch.cat([z, a], -1)), h)

    def _decode(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.decoder_input(torch.cat([h, z], -1)).view(-1, self.top, self.bottom, self.bottom)
        return self.decoder(x)

    def _observe(self, obs: torch.Tensor, actions: torch.Tensor, state: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Filter the views: predictions (from the prior), states after each view, prior and posterior
        probabilities and the posterior samples' decodes."""
        batch, steps = obs.shape[:2]
        state = self.initial_state(batch, device=obs.device, dtype=obs.dtype) if state is None else state
        embeds = self.encoder(obs.flatten(0, 1)).view(batch, steps, -1)
        predictions, states, priors, posteriors, reconstructions = [], [], [], [], []
        for t in range(steps):
            h = self._advance(state, actions[:, t])
            prior = self._distribution(self.prior(h))
            posterior = self._distribution(self.posterior(torch.cat([h, embeds[:, t]], -1)))
            predictions.append(self._decode(h, self._sample(prior)))
            z = self._sample(posterior)
            reconstructions.append(self._decode(h, z))
            state = torch.cat([h, z], -1)
            states.append(state)
            priors.append(prior)
            posteriors.append(posterior)
        return torch.stack(predictions, 1), torch.stack(states, 1), priors, posteriors, reconstructions

    # -- public API ----------------------------------------------------------------------------------------------
    def forward(self, obs: torch.Tensor, actions: torch.Tensor, state: torch.Tensor | None = None, *,
                return_maps: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Predictions ``(B, T, C, view, view)`` of every view from the ones before it (and the states after each
        view ``(B, T, H + S K)`` with ``return_maps``)."""
        obs, actions = self._check(obs, actions)
        predictions, states, *_ = self._observe(obs, actions, state)
        return (predictions, states) if return_maps else predictions

    def observe(self, views: torch.Tensor, motions: torch.Tensor, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """:class:`~fernn.imagination.WorldModelProtocol`'s observation: :meth:`forward` with ``return_maps``."""
        return self(views, motions, state, return_maps=True)

    def elbo_loss(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """DreamerV3's world-model loss on observed views: reconstruction MSE (from posterior samples) plus the
        balanced KL (0.5 dynamics, 0.1 representation, one free nat)."""
        obs, actions = self._check(obs, actions)
        _, _, priors, posteriors, reconstructions = self._observe(obs, actions, None)
        prior, posterior = torch.stack(priors, 1), torch.stack(posteriors, 1)

        def kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
            return (p * (p.log() - q.log())).sum((-2, -1)).clamp_min(FREE_NATS).mean()

        dynamics = kl(posterior.detach(), prior)
        representation = kl(posterior, prior.detach())
        reconstruction = F.mse_loss(torch.stack(reconstructions, 1), obs)
        # DreamerV3 sums the reconstruction error over pixels; the KL terms are weighed per pixel to match
        return reconstruction + (0.5 * dynamics + 0.1 * representation) / obs[0, 0].numel()

    def rollout(self, obs: torch.Tensor, actions: torch.Tensor, future_actions: torch.Tensor, *,
                targets: torch.Tensor | None = None, teacher_forcing: float = 0.0, detach_feedback: bool = True,
                feedback_range: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
        """Filter a context, then imagine from the prior after each of ``future_actions (B, K)``:
        ``(B, K, C, view, view)``. With ``teacher_forcing`` the true view sometimes updates the posterior instead."""
        obs, actions = self._check(obs, actions)
        future = self._check_actions("future_actions", future_actions, obs.shape[0])
        feedback = Feedback(targets, teacher_forcing, detach=detach_feedback, clip=feedback_range)
        feedback.check_targets((obs.shape[0], future.shape[1], *obs.shape[2:]))
        _, states, *_ = self._observe(obs, actions, None)
        return self._imagine(states[:, -1], future, feedback)

    def imagine(self, state: torch.Tensor, future_actions: torch.Tensor) -> torch.Tensor:
        """Free-running predictions from states ``(B, H + S K)``: ``(B, K, C, view, view)``."""
        self._check_state(state)
        return self._imagine(state, self._check_actions("future_actions", future_actions, state.shape[0]), Feedback())

    def imagine_step(self, state: torch.Tensor, motions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One imagined step from states ``(B, H + S K)`` after the motions ``(B,)``: the view decoded from the prior
        ``(B, C, view, view)`` and the state after it (the prior's sample): ``(view, next_state)``."""
        self._check_state(state)
        motions = self._check_actions("motions", motions[:, None], state.shape[0])[:, 0]
        h = self._advance(state, motions)
        prior = self._distribution(self.prior(h))
        prediction = self._decode(h, self._sample(prior))
        return prediction, torch.cat([h, self._sample(prior)], -1)

    def _check_state(self, state: torch.Tensor) -> None:
        check_float_tensor("state", state, ndim=2, layout="(B, H + S K)")
        if state.shape[1] != self.state_size:
            raise ValueError(f"state must have shape (B, {self.state_size}), got {tuple(state.shape)}")

    def _imagine(self, state: torch.Tensor, future: torch.Tensor, feedback: Feedback) -> torch.Tensor:
        predictions = []
        for k in range(future.shape[1]):
            h = self._advance(state, future[:, k])
            prior = self._distribution(self.prior(h))
            prediction = self._decode(h, self._sample(prior))
            predictions.append(prediction)
            z = self._sample(prior)
            if feedback.teacher_forcing > 0 and float(torch.rand(())) < feedback.teacher_forcing:
                posterior = self._distribution(self.posterior(torch.cat([h, self.encoder(feedback.targets[:, k])], -1)))
                z = self._sample(posterior)
            state = torch.cat([h, z], -1)
        return torch.stack(predictions, 1)

    def _check(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = check_views(obs, self.in_channels, self.view_size)
        return obs, self._check_actions("actions", actions, obs.shape[0], steps=obs.shape[1])

    def _check_actions(self, name: str, actions: torch.Tensor, batch: int, steps: int | None = None) -> torch.Tensor:
        actions = check_action_sequence(name, actions, batch, "action", steps)
        if actions.is_floating_point() or actions.dtype == torch.bool:
            raise TypeError(f"{name} must have an integer dtype (action ids), got {actions.dtype}")
        if int(actions.min()) < 0 or int(actions.max()) >= self.actions:
            raise ValueError(f"{name} must be action ids in [0, {self.actions - 1}]; got values in "
                             f"[{int(actions.min())}, {int(actions.max())}]")
        return actions.to(device=self.gru.weight_hh.device, dtype=torch.long)
