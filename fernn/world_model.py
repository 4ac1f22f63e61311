"""Self-motion: the FloWM world model, an action-conditioned FERNN with a world-sized latent map.

The latent map is kept in the agent's frame (egocentric): the observation window always occupies
rows ``0 .. h-1`` and columns ``0 .. w-1`` of the ``(H, W)`` (``world_size``) torus, and the
world moves past it. One step, for an observation ``o_t`` taken after the window moved by
``a_t = (dx, dy)``::

    m     = S_{-a_t} S_v M_{t-1}[v]                     # every velocity channel: its own flow, minus the action
    pred  = decoder(window(max_v m))                    # the prediction of o_t, before it arrives
    M_t[v] = act(conv_rec(m) + paste(conv_in(o_t)))     # o_t written at the window's place

``S_(sx, sy)`` is the circular shift of :mod:`fernn.shifts` (``torch.roll(x, (sy, sx), (-2, -1))``), so an
action ``(dx, dy)`` has the axis convention of :class:`fernn.TranslationFlow`; all shifts of a step
(velocities x batch items) are one ``gather``.

Equivariance (tested in ``tests/test_world_model.py``):

* self-motion: on a fully observed torus (window = world), an agent that moves by ``a_t`` sees
  ``o'_t = S_{-p_t} o_t`` (``p_t = a_1 + ... + a_t``) and its map is ``M'_t = S_{-p_t} M_t``: the latent map
  moves opposite to the agent, exactly;
* self-motion = external flow: if the agent moves by an extra ``nu`` every step while the world moves
  with it (so every observation is the same), ``M'_t[v] = M_t[v - nu]``: the motion is re-labelled
  into the velocity channels, exactly, also when the window is smaller than the world.

Ablations of the FloWM paper under the same API: ``TranslationFlow(0)`` (no velocity channels),
``self_motion=False`` (actions do not move the map), ``action_concat=True`` (no shift; the action enters
as extra input channels of the input and recurrent convolutions, as in the reference code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fernn._validation import check_channels, check_choice, check_float_tensor, check_int
from fernn.cell import FERNN
from fernn.core import Feedback
from fernn.flows import TranslationFlow
from fernn.imagination import WINDOW_MOVES
from fernn.models import POOLS, frame_decoder, pool_velocities_window


class WorldModel(nn.Module):
    """The FloWM world model on a partially observed torus (see the module docstring for the update).

    Args:
        in_channels: observation channels ``C``.
        hidden_channels: hidden channels per velocity channel (FloWM: 64).
        flow: a :class:`fernn.TranslationFlow` (FloWM-V2: ``TranslationFlow(2)``; ablation: ``TranslationFlow(0)``).
        world_size: ``(H, W)`` of the latent map, or one side for a square map (FloWM: 50).
        window_size: ``(h, w)`` of an observation, or one side (FloWM: 32); at most the world along each axis.
        self_motion: shift the map by minus the action every step (the ablation turns it off).
        action_concat: feed the action ``(dx, dy)`` as two constant extra channels to the input and the
            recurrent convolution instead of shifting the map (the action-concat baseline).
        kernel_size: odd size of the recurrent and decoder convolutions.
        decoder_layers: hidden conv layers of the window decoder (FloWM: 1).
        pool: ``"max"`` (FloWM) or ``"mean"`` over velocity channels before decoding.
        relaxed: filter banks of an approximately equivariant recurrence (0: exact sharing), see :class:`fernn.FERNN`.

    Shapes:
        ``forward(obs, actions)``: ``obs (B, T, C, h, w)`` float, ``actions (B, T, 2)`` integer ``(dx, dy)``
        -> predictions ``(B, T, C, h, w)`` (and the maps ``(B, T, V, hidden, H, W)`` on request).
    """

    def __init__(self, in_channels: int, hidden_channels: int, flow: TranslationFlow, *,
                 world_size: int | tuple[int, int] = 50, window_size: int | tuple[int, int] = 32, self_motion: bool = True, action_concat: bool = False, kernel_size: int = 3,
                 decoder_layers: int = 1, pool: str = "max", relaxed: int = 0) -> None:
        super().__init__()
        if not isinstance(flow, TranslationFlow):
            raise TypeError("WorldModel needs a TranslationFlow (its map lives on a torus that actions translate); "
                            f"got {type(flow).__name__}")
        self.world_size, self.window_size = world_size, window_size
        self.world_hw = _size_pair("world_size", world_size)
        self.window_hw = _size_pair("window_size", window_size)
        if self.window_hw[0] > self.world_hw[0] or self.window_hw[1] > self.world_hw[1]:
            raise ValueError(f"window_size must be <= world_size along each axis (the window looks at part of the "
                             f"world); got window_size={window_size}, world_size={world_size}")
        if action_concat and self_motion:
            raise ValueError("action_concat=True is the baseline that replaces the self-motion shift; pass "
                             "self_motion=False with it")
        self.self_motion = bool(self_motion)
        self.action_concat = bool(action_concat)
        self.pool = check_choice("pool", pool, POOLS)
        self.rnn = FERNN(in_channels, hidden_channels, flow, kernel_size, relaxed=relaxed)
        self.decoder = frame_decoder(self.rnn.state_channels, in_channels, kernel_size, decoder_layers)
        if self.action_concat:
            self.action_in = nn.Linear(2, hidden_channels, bias=False)
            self.action_rec = nn.Linear(2, hidden_channels, bias=False)

    #: how the agent's motions enter: window moves ``(dx, dy)`` on the torus
    motion_kind = "translation"
    #: the motions it imagines (:class:`fernn.imagination.WorldModelProtocol`)
    motions = WINDOW_MOVES

    @property
    def flow(self) -> TranslationFlow:
        return self.rnn.flow

    @property
    def view_shape(self) -> tuple[int, int, int]:
        """``(C, h, w)`` of an observation."""
        return (self.rnn.in_channels, *self.window_hw)

    @property
    def num_velocities(self) -> int:
        return self.rnn.num_velocities

    def initial_state(self, batch_size: int, *, device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The empty map ``(B, V, hidden, H, W)``."""
        return self.rnn.initial_state(batch_size, *self.world_hw, device=device, dtype=dtype)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, state: torch.Tensor | None = None, *,
                return_maps: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Predict every observation from the ones before it (teacher forcing).

        Args:
            obs: ``(B, T, C, h, w)`` float windows ``o_0 .. o_{T-1}``.
            actions: ``(B, T, 2)`` integer ``(dx, dy)``; ``actions[:, t]`` moved the window just before
                ``o_t`` was taken (``actions[:, 0]`` acts on ``state``, which is empty by default).
            state: optional map ``(B, V, hidden, H, W)`` to continue from.
            return_maps: also return the maps after each observation.

        Returns:
            ``pred (B, T, C, h, w)``, ``pred[:, t]`` the prediction of ``o_t`` from ``o_{<t}`` and
            ``a_{<=t}`` (so ``pred[:, 0]`` comes from ``state`` alone); with ``return_maps`` also
            ``maps (B, T, V, hidden, H, W)`` (``maps[:, -1]`` continues the sequence).
        """
        obs, actions = self._check(obs, actions)
        h = None if state is None else self._internal_state(state, obs)
        predictions, maps = self._observe(obs, actions, h, keep_maps=return_maps)
        if return_maps:
            return predictions, self.rnn.core.states_to_public(torch.stack(maps, 1))
        return predictions

    def observe(self, views: torch.Tensor, motions: torch.Tensor, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """:class:`~fernn.imagination.WorldModelProtocol`'s observation: :meth:`forward` with ``return_maps``."""
        return self(views, motions, state, return_maps=True)

    def rollout(self, obs: torch.Tensor, actions: torch.Tensor, future_actions: torch.Tensor, *,
                targets: torch.Tensor | None = None, teacher_forcing: float = 0.0,
                detach_feedback: bool = True,
                feedback_range: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
        """Observe a context, then imagine: each prediction is fed back as the next observation.

        Args:
            obs: ``(B, T, C, h, w)`` context windows, with their ``actions (B, T, 2)``.
            future_actions: ``(B, K, 2)`` integer actions of the imagined steps.
            targets: ``(B, K, C, h, w)`` true future windows, needed when ``teacher_forcing > 0``.
            teacher_forcing: probability (per step, torch's RNG) of feeding the true window instead.
            detach_feedback: stop gradients through fed-back predictions.
            feedback_range: clip fed-back predictions to the windows' range (``None``: don't), as
                :meth:`fernn.NextFramePredictor.forward` does.

        Returns:
            ``(B, K, C, h, w)``: the predicted windows after each future action.
        """
        obs, actions = self._check(obs, actions)
        future_actions = self._check_actions("future_actions", future_actions, obs.shape[0])
        feedback = Feedback(targets, teacher_forcing, detach=detach_feedback, clip=feedback_range)
        feedback.check_targets((obs.shape[0], future_actions.shape[1], *obs.shape[2:]))
        _, maps = self._observe(obs, actions, None, keep_maps=False)
        return self._imagine(maps[-1], future_actions, feedback)

    def imagine(self, state: torch.Tensor, future_actions: torch.Tensor) -> torch.Tensor:
        """Free-running predictions from a map ``state (B, V, hidden, H, W)`` (e.g. ``maps[:, -1]`` of
        :meth:`forward`) after each of the integer ``future_actions (B, K, 2)``: ``(B, K, C, h, w)``. A planner
        imagines many candidate futures of one state this way, in one batched call."""
        check_float_tensor("state", state, ndim=5, layout="(B, V, hidden, H, W)")
        future_actions = self._check_actions("future_actions", future_actions, state.shape[0])
        return self._imagine(self._internal_state(state, like=state), future_actions)

    def imagine_step(self, state: torch.Tensor, moves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One imagined step for an agent that decides as it goes (learning in imagination): the map ``state
        (B, V, hidden, H, W)`` moved by the integer ``moves (B, 2)``, the window predicted from it ``(B, C, h, w)``,
        and the map after that prediction is taken in as the observation (clipped to [0, 1]), as :meth:`imagine`
        feeds its predictions back. Returns ``(prediction, next_state)``."""
        check_float_tensor("state", state, ndim=5, layout="(B, V, hidden, H, W)")
        moves = self._check_actions("moves", moves[:, None], state.shape[0])[:, 0]
        h = self._internal_state(state, like=state)
        batch = h.shape[0]
        moved = self._transport(h, moves)
        prediction = self._decode(moved, batch)
        drive = self._drives(prediction.clamp(0, 1)[:, None], moves[:, None])[:, 0]
        following = self.rnn.core.recur(moved, drive, None)
        return prediction, self.rnn.core.states_to_public(following)

    def _imagine(self, h: torch.Tensor, future_actions: torch.Tensor, feedback: Feedback | None = None) -> torch.Tensor:
        """Free-running predictions from the internal map ``h`` (``(B, V, H, W, C)``, the core's layout) after
        each of the checked ``future_actions (B, K, 2)``; ``feedback`` defaults to the clipped, detached
        prediction. Returns ``(B, K, C, h, w)``."""
        feedback = Feedback() if feedback is None else feedback
        batch = h.shape[0]

        def encode(prediction: torch.Tensor, k: int) -> torch.Tensor:
            return self._drives(feedback(prediction, k)[:, None], future_actions[:, k, None])[:, 0]

        _, predictions = self.rnn.scan((), h, self.rnn.core.weights(), steps=future_actions.shape[1],
                                       transport=lambda state, k: self._transport(state, future_actions[:, k]),
                                       decode=lambda moved, k: self._decode(moved, batch), feedback=encode,
                                       keep_states=False)
        return torch.stack(predictions, 1)

    def _observe(self, obs: torch.Tensor, actions: torch.Tensor, h: torch.Tensor | None, *,
                 keep_maps: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Teacher-forced pass from the internal map ``h`` (``None``: the empty map): predictions
        ``(B, T, C, h, w)`` and the internal maps (all, or the last).

        From the empty map the first step moves nothing and its prediction decodes an empty window
        (:meth:`fernn.FERNN.scan` skips that step's transport and recurrent convolution); not for action-concat,
        whose recurrent input is the action embedding even on an empty map.
        """
        batch = obs.shape[0]
        drives = self._drives(obs, actions).unbind(1)  # one stack in backward, not T zero-filled copies
        if h is None and self.action_concat:
            h = self._internal_state(None, obs)

        def decode(moved: torch.Tensor | None, t: int) -> torch.Tensor:
            if moved is None:
                empty = drives[t].new_zeros(batch, *self.window_hw, drives[t].shape[-1])
                return self.decoder(empty.permute(0, 3, 1, 2))
            return self._decode(moved, batch)

        maps, predictions = self.rnn.scan(drives, h, self.rnn.core.weights(), transport=lambda state, t: self._transport(state, actions[:, t]),
                                          decode=decode, keep_states=keep_maps)
        return torch.stack(predictions, 1), maps

    def _transport(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``S_{-a} S_v h[v]`` padded for the recurrent conv (``(B * V, C, H + 2p, W + 2p)``)."""
        transported = self.rnn.core.transport(h, offsets=-action if self.self_motion else None)
        if self.action_concat:
            embedded = self.action_rec(action.to(transported.dtype))
            transported = transported + embedded.repeat_interleave(self.num_velocities, 0)[:, :, None, None]
        return transported

    def _decode(self, transported: torch.Tensor, batch: int) -> torch.Tensor:
        """Pool the moved map over velocities and decode the window region: ``(B, C, h, w)``."""
        core = self.rnn.core
        maps = core.advected(transported, batch, padded=True)
        pooled = pool_velocities_window(maps, core.pad, core.pad, self.window_hw, self.pool)
        return self.decoder(pooled.permute(0, 3, 1, 2))

    def _drives(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Encoded windows pasted at the window's place of an empty map: ``(B, T, H, W, C)``."""
        batch, steps = obs.shape[:2]
        drive = self.rnn.core.drive(obs.flatten(0, 1), None)
        if self.action_concat:
            drive = drive + self.action_in(actions.flatten(0, 1).to(drive.dtype))[:, None, None, :]
        drive = F.pad(drive, (0, 0, 0, self.world_hw[1] - self.window_hw[1], 0, self.world_hw[0] - self.window_hw[0]))
        return drive.view(batch, steps, *drive.shape[1:])

    def _internal_state(self, state: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """A map ``(B, V, hidden, H, W)`` checked against the batch and dtype of ``like`` (``None``: the empty
        map), in the core's internal layout."""
        if state is None:
            state = self.initial_state(like.shape[0], device=like.device, dtype=like.dtype)
        expected = (like.shape[0], self.num_velocities, self.rnn.state_channels, *self.world_hw)
        if not isinstance(state, torch.Tensor) or tuple(state.shape) != expected or state.dtype != like.dtype:
            got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise ValueError(f"state must be a {like.dtype} tensor of shape (B, V, hidden, H, W) = {expected}, got {got}")
        return self.rnn.core.state_from_public(state)

    def _check(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        layout = "(B, T, C, h, w)"
        check_float_tensor("obs", obs, ndim=5, layout=layout)
        check_channels("obs", obs, 2, self.rnn.in_channels, layout)
        if tuple(obs.shape[-2:]) != self.window_hw:
            raise ValueError(f"obs windows must be {self.window_hw[0]}x{self.window_hw[1]} (window_size), got "
                             f"{obs.shape[-2]}x{obs.shape[-1]} in shape {tuple(obs.shape)}")
        actions = self._check_actions("actions", actions, obs.shape[0])
        if actions.shape[1] != obs.shape[1]:
            raise ValueError(f"actions must have one (dx, dy) per observation: shape ({obs.shape[0]}, {obs.shape[1]}, 2), "
                             f"got {tuple(actions.shape)}")
        return obs, actions

    def _check_actions(self, name: str, actions: torch.Tensor, batch: int) -> torch.Tensor:
        if not isinstance(actions, torch.Tensor):
            raise TypeError(f"{name} must be an integer torch.Tensor of shape (B, T, 2), got {type(actions).__name__}")
        if actions.is_floating_point() or actions.is_complex() or actions.dtype == torch.bool:
            raise TypeError(f"{name} must have an integer dtype (e.g. torch.long): integer window displacements "
                            f"(dx, dy); got {actions.dtype}")
        if actions.dim() != 3 or actions.shape[0] != batch or actions.shape[2] != 2 or actions.shape[1] == 0:
            raise ValueError(f"{name} must have shape (B, T, 2) = ({batch}, T >= 1, 2) of (dx, dy), got "
                             f"{tuple(actions.shape)}")
        largest = int(actions.abs().max())
        if largest > max(self.world_hw):
            raise ValueError(f"{name} moves the window by up to {largest} px, larger than the world "
                             f"(world_size={self.world_size}); accepted: |dx|, |dy| <= {max(self.world_hw)}")
        return actions.to(device=self.decoder[0].weight.device, dtype=torch.long)


def _size_pair(name: str, value: int | tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` from one side or a pair of sides, each an integer >= 1."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a side or a pair (H, W), got {value!r}")
        return check_int(f"{name}[0]", value[0], minimum=1), check_int(f"{name}[1]", value[1], minimum=1)
    side = check_int(name, value, minimum=1)
    return side, side
