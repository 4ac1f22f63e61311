"""FloWM in 3-D: a world model whose egocentric top-down map turns and walks with a first-person agent.

The memory is a map ``(B, V, C, S, S)`` of the room around the agent, ``S = 2 room + 1`` cells with the agent on
the centre cell facing ``+x`` (:mod:`fernn.egocentric`), one ``C``-channel map per velocity channel. One step, for
the view ``o_t`` seen after the agent's motion ``a_t``::

    m      = g(a_t) S_v M_{t-1}[v]             exact: the agent's turn / step and each channel's own flow
    m      = m + mix(m)                        learned: content may change channel (blocks bounce off walls)
    pred_t = readout(max_v m)                  the view o_t predicted before it arrives
    M_t    = write(m, lift(o_t))               the view written into the cells of the field-of-view cone

Everything that moves the map is exact and kept apart (:class:`fernn.egocentric.SelfMotion`); the rest is learned
and uses the camera's geometry instead of learning it:

* **lift** (view -> cone cells): a small convolutional encoder, sampled, for every map cell in the field of view,
  where that cell appears in the picture: at the column of its bearing and at the rows of its floor point and of
  the middle of a block standing on it (inverse perspective). An MLP turns the two samples and a learned
  embedding of the cell's place into content and a gate per velocity channel (a gated write, as FloWM's).
* **readout** (cone -> view): one ray per picture column, sampled across the map at one-cell steps (the map max-
  pooled over velocity channels). Each sample has a learned opacity for a block (covering the rows from the
  horizon down to its base at that distance: the blocks' tops are at the eye's height) and for a wall (up to the
  wall's top), and learned features; the samples are composited front to back for every row, and a small
  convolutional decoder turns the composited features into the picture.
* **mix**: a convolution over each velocity channel and its opposite, turned with the channel's direction (the
  channel moving right sees its surroundings as the channel moving ahead does), zero at the start (identity).

Ablations under the same API: ``EgocentricFlow(0)`` (no velocity channels) and ``self_motion=False`` (the map
is not moved by the agent's motions; they enter as an embedding of the lift instead).

Why this and not the paper's ViT: at the scale of a CPU (minutes of training, tens of thousands of parameters),
sampling at the cells' projected positions and compositing along rays give the lift and the readout the camera
geometry for free, so what is learned is only *what* is where; a transformer over patches and cone tokens must
learn the geometry from data, which takes the paper's ten million parameters and GPU days.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fernn._validation import check_action_sequence, check_float_tensor, check_int, check_views
from fernn.core import Feedback
from fernn.egocentric import EYE_HEIGHT, WALL_HEIGHT, EgocentricFlow, SelfMotion, check_motions
from fernn.imagination import FIRST_PERSON_MOTIONS

#: the camera of the block world (fernn.envs.first_person): eye height, wall height (in cells)


class WorldModel3D(nn.Module):
    """The egocentric map world model of a first-person agent (see the module docstring).

    Args:
        in_channels: view channels (3 for RGB).
        hidden_channels: map channels ``C`` per velocity channel.
        flow: the velocity channels, an :class:`fernn.egocentric.EgocentricFlow` (default: the paper's five
            cardinal channels; ``EgocentricFlow(0)``: the ablation without velocity channels).
        room_size: cells per side of the room (the map has ``2 room_size + 1``).
        view_size: side of the square views in pixels.
        fov: the camera's vertical (= horizontal) field of view in degrees.
        self_motion: move the map by the agent's motions (the ablation turns it off).
        encoder_channels, decoder_channels: widths of the view encoder and the picture decoder.

    Shapes:
        ``forward(obs, actions)``: ``obs (B, T, C_in, view, view)`` float in [0, 1], ``actions (B, T)`` integer
        motions (0 turn left, 1 turn right, 2 forward, 3 stay; ``actions[:, t]`` led to ``obs[:, t]``) ->
        predictions ``(B, T, C_in, view, view)``; maps ``(B, V, C, S, S)``.
    """

    def __init__(self, in_channels: int = 3, hidden_channels: int = 16, flow: EgocentricFlow | None = None, *,
                 room_size: int = 16, view_size: int = 64, fov: float = 60.0, self_motion: bool = True,
                 encoder_channels: int = 48, decoder_channels: int = 32) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.hidden_channels = check_int("hidden_channels", hidden_channels, minimum=1)
        self.room_size = check_int("room_size", room_size, minimum=2)
        self.view_size = check_int("view_size", view_size, minimum=8)
        if self.view_size % 4:
            raise ValueError(f"view_size must be a multiple of 4 (the encoder and decoder halve it), got {view_size}")
        if isinstance(fov, bool) or not isinstance(fov, (int, float)) or not 0 < fov < 180:
            raise ValueError(f"fov must be in (0, 180) degrees, got {fov!r}")
        flow = EgocentricFlow() if flow is None else flow
        if not isinstance(flow, EgocentricFlow):
            raise TypeError(f"flow must be a fernn.egocentric.EgocentricFlow (velocities closed under quarter turns), "
                            f"got {type(flow).__name__}")
        self.flow, self.fov, self.self_motion = flow, float(fov), bool(self_motion)
        self.map_size = 2 * self.room_size + 1
        self.motion = SelfMotion(flow, self.map_size, move_map=self.self_motion)
        hidden, encoder, decoder = hidden_channels, encoder_channels, decoder_channels
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, encoder, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(encoder, encoder, 3, padding=1), nn.ReLU())
        self._cone_geometry()
        place = 16
        self.place = nn.Parameter(torch.randn(len(self.cone_cells), place) * 0.1)
        self.action_embedding = None if self.self_motion else nn.Embedding(4, place)
        self.lift = nn.Sequential(nn.Linear(2 * encoder + place, 64), nn.ReLU(), nn.Linear(64, hidden))
        self.gate = nn.Linear(2 * hidden, hidden)
        self._mixing_geometry()
        self.mix = nn.Sequential(nn.Conv2d(2 * hidden + self.orbit_count, hidden // 2 or 1, 3, padding=1,
                                           padding_mode="circular"), nn.ReLU(), nn.Conv2d(hidden // 2 or 1, hidden, 1))
        nn.init.zeros_(self.mix[-1].weight)
        nn.init.zeros_(self.mix[-1].bias)
        self._ray_geometry()
        self.samples = nn.Conv2d(hidden, 2 + decoder, 1)
        self.background = nn.Parameter(torch.zeros(decoder, self.view_size // 2, 1))
        self.decoder = nn.Sequential(nn.ReLU(), nn.Conv2d(decoder, decoder, 3, padding=1), nn.ReLU(),
                                     nn.Upsample(scale_factor=2), nn.Conv2d(decoder, in_channels, 3, padding=1))

    # -- geometry ------------------------------------------------------------------------------------------------
    def _cone_geometry(self) -> None:
        """The map cells in the field of view and where each appears in the view (``grid_sample`` coordinates)."""
        centre, spread = self.room_size, math.tan(math.radians(self.fov) / 2)
        cells, points = [], []
        for ahead in range(1, self.room_size + 1):
            for left in range(-self.room_size, self.room_size + 1):
                if abs(left) <= ahead * spread + 0.5:
                    cells.append((centre + left) * self.map_size + centre + ahead)
                    column = -left / (ahead * spread)  # right of the picture is the agent's right (-y)
                    base = EYE_HEIGHT / (ahead * spread)  # the floor point's row; a block's middle is halfway up
                    points.append([(column, base), (column, base / 2)])
        self.register_buffer("cone_cells", torch.tensor(cells), persistent=False)
        self.register_buffer("cone_points", torch.tensor(points).clamp(-1, 1), persistent=False)  # (N, 2, 2)

    def _mixing_geometry(self) -> None:
        """For every velocity channel: its quarter turns from its orbit's first member, its orbit, its opposite."""
        velocities = self.flow.velocities
        turns, orbits, representatives = [], [], []
        for v in velocities.tolist():
            for k in range(4):
                canonical = torch.tensor(v)
                for _ in range(k):  # turn back right k times
                    canonical = torch.stack([-canonical[1], canonical[0]])
                if v == [0, 0] or (canonical[0] > 0 and canonical[1] >= 0):
                    break
            key = tuple(canonical.tolist())
            if key not in representatives:
                representatives.append(key)
            turns.append(k)
            orbits.append(representatives.index(key))
        opposite = [(velocities == -v).all(-1).float().argmax().item() for v in velocities]
        self.orbit_count = len(representatives)
        self.register_buffer("channel_turns", torch.tensor(turns), persistent=False)
        self.register_buffer("channel_orbits", torch.tensor(orbits), persistent=False)
        self.register_buffer("opposite", torch.tensor(opposite), persistent=False)

    def _ray_geometry(self) -> None:
        """The readout's rays: map sample points of every column and step ``(K, W, 2)``, and which samples can
        cover each row as a block or as a wall ``(H, K)``."""
        side = self.view_size // 2
        spread = math.tan(math.radians(self.fov) / 2)
        offsets = ((torch.arange(side) + 0.5) * (2 / side) - 1) * spread  # right per unit depth
        depths = torch.arange(1, math.ceil(self.room_size * math.sqrt(2)) + 2, dtype=torch.float32)  # (K,)
        ahead = depths[:, None].expand(-1, side)
        left = -offsets[None] * depths[:, None]
        size = self.map_size
        to_grid = lambda cells: (cells + self.room_size + 0.5) / size * 2 - 1  # noqa: E731  (align_corners=False)
        self.register_buffer("ray_points", torch.stack([to_grid(ahead), to_grid(left)], -1), persistent=False)
        slopes = (1 - (torch.arange(side) + 0.5) * (2 / side)) * spread  # height per unit depth seen by each row
        base = -EYE_HEIGHT / depths  # (K,)
        above_base = slopes[:, None] >= base[None]
        self.register_buffer("block_rows", (above_base & (slopes[:, None] <= 0)).float(), persistent=False)
        self.register_buffer("wall_rows", (above_base & (slopes[:, None] <= (WALL_HEIGHT - EYE_HEIGHT) / depths[None]))
                             .float(), persistent=False)

    # -- public API ----------------------------------------------------------------------------------------------
    #: how the agent's motions enter: the first-person motions 0 turn left, 1 turn right, 2 forward, 3 stay
    motion_kind = "first-person"
    #: the motions it imagines (:class:`fernn.imagination.WorldModelProtocol`)
    motions = FIRST_PERSON_MOTIONS

    @property
    def view_shape(self) -> tuple[int, int, int]:
        """``(C, view, view)`` of an observation."""
        return (self.in_channels, self.view_size, self.view_size)

    @property
    def num_velocities(self) -> int:
        return self.flow.num_velocities

    def initial_state(self, batch_size: int, *, device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The empty map ``(B, V, C, S, S)``."""
        size = self.map_size
        return torch.zeros(batch_size, self.num_velocities, self.hidden_channels, size, size, device=device,
                           dtype=dtype)

    def move(self, maps: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The exact one-step transport of maps ``(B, V, C, S, S)`` by the motions ``actions (B,)`` (the env's
        action ids: 0 turn left, 1 turn right, 2 forward, 3 stay) and each channel's flow: ``(B, V, C, S, S)``."""
        check_float_tensor("maps", maps, ndim=5, layout="(B, V, C, S, S)")
        internal = self._internal(maps)
        return self._public(self.motion.move(internal, check_motions(actions, maps.shape[0], maps.device)))

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, state: torch.Tensor | None = None, *,
                return_maps: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Predict every view from the ones before it (teacher forcing): ``pred (B, T, C_in, view, view)``,
        ``pred[:, t]`` made from ``obs[:, :t]`` and ``actions[:, :t + 1]``; with ``return_maps`` also the maps
        after each view ``(B, T, V, C, S, S)``."""
        obs, actions = self._check(obs, actions)
        h = None if state is None else self._internal(self._check_state(state, obs))
        lifted = self._lift(obs)
        predictions, maps = [], []
        for t in range(obs.shape[1]):
            h, prediction = self._step(h, actions[:, t], lifted[:, t])
            predictions.append(prediction)
            if return_maps:
                maps.append(h)
        predictions = torch.stack(predictions, 1)
        if return_maps:
            return predictions, self._public(torch.stack(maps, 1))
        return predictions

    def observe(self, views: torch.Tensor, motions: torch.Tensor, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """:class:`~fernn.imagination.WorldModelProtocol`'s observation: :meth:`forward` with ``return_maps``."""
        return self(views, motions, state, return_maps=True)

    def imagine_step(self, state: torch.Tensor, motions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One imagined step from maps ``state (B, V, C, S, S)`` after the motions ``(B,)``: the view predicted
        ``(B, C_in, view, view)`` and the maps after it is taken in as the observation (clipped to [0, 1]), as
        :meth:`imagine` feeds its predictions back. Returns ``(view, next_state)``."""
        check_float_tensor("state", state, ndim=5, layout="(B, V, C, S, S)")
        motions = self._check_actions("motions", motions[:, None], state.shape[0])[:, 0]
        moved = self._transport(self._internal(self._check_state(state, state)), motions, state.shape[0],
                                state.device)
        prediction = self._readout(moved)
        following = self._write(moved, self._lift(prediction.clamp(0, 1)[:, None])[:, 0], motions)
        return prediction, self._public(following)

    def rollout(self, obs: torch.Tensor, actions: torch.Tensor, future_actions: torch.Tensor, *,
                targets: torch.Tensor | None = None, teacher_forcing: float = 0.0, detach_feedback: bool = True,
                feedback_range: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
        """Observe a context, then imagine after each of ``future_actions (B, K)``, feeding every prediction back
        as the next view: ``(B, K, C_in, view, view)``. ``targets``/``teacher_forcing``: as
        :meth:`fernn.WorldModel.rollout`."""
        obs, actions = self._check(obs, actions)
        future = self._check_actions("future_actions", future_actions, obs.shape[0])
        feedback = Feedback(targets, teacher_forcing, detach=detach_feedback, clip=feedback_range)
        feedback.check_targets((obs.shape[0], future.shape[1], *obs.shape[2:]))
        h = None
        lifted = self._lift(obs)
        for t in range(obs.shape[1]):
            h, _ = self._step(h, actions[:, t], lifted[:, t])
        return self._imagine(h, future, feedback)

    def imagine(self, state: torch.Tensor, future_actions: torch.Tensor, *,
                return_maps: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Free-running predictions from maps ``state (B, V, C, S, S)`` after each of ``future_actions (B, K)``:
        ``(B, K, C_in, view, view)`` (a planner imagines many candidate futures this way, in one batched call); with
        ``return_maps`` also the maps each prediction was read from ``(B, K, V, C, S, S)``."""
        check_float_tensor("state", state, ndim=5, layout="(B, V, C, S, S)")
        future = self._check_actions("future_actions", future_actions, state.shape[0])
        maps: list[torch.Tensor] | None = [] if return_maps else None
        predictions = self._imagine(self._internal(self._check_state(state, state)), future, Feedback(), maps)
        return (predictions, self._public(torch.stack(maps, 1))) if return_maps else predictions

    def readout_map(self, maps: torch.Tensor) -> torch.Tensor:
        """A picture of maps ``(B, V, C, S, S)``: the norm of the velocity-pooled features per cell, ``(B, S, S)``
        (rows to the agent's left, columns ahead)."""
        return maps.amax(1).norm(dim=1)

    # -- one step ------------------------------------------------------------------------------------------------
    def _imagine(self, h: torch.Tensor | None, future: torch.Tensor, feedback: Feedback,
                 maps: list[torch.Tensor] | None = None) -> torch.Tensor:
        predictions = []
        for k in range(future.shape[1]):
            moved = self._transport(h, future[:, k], future.shape[0], future.device)
            if maps is not None:
                maps.append(moved)
            prediction = self._readout(moved)
            predictions.append(prediction)
            if k + 1 < future.shape[1]:
                fed = feedback(prediction, k)
                h = self._write(moved, self._lift(fed[:, None])[:, 0], future[:, k])
        return torch.stack(predictions, 1)

    def _step(self, h: torch.Tensor | None, action: torch.Tensor, lifted: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        moved = self._transport(h, action, action.shape[0], action.device)
        return self._write(moved, lifted, action), self._readout(moved)

    def _transport(self, h: torch.Tensor | None, action: torch.Tensor, batch: int,
                   device: torch.device) -> torch.Tensor:
        """``m = g(a) S_v h[v]``, then ``m + mix(m)``: ``(B, V, S, S, C)``."""
        if h is None:
            size = self.map_size
            return torch.zeros(batch, self.num_velocities, size, size, self.hidden_channels, device=device,
                               dtype=self.gate.weight.dtype)
        moved = self.motion.move(h, action)
        return moved + self._mixing(moved)

    def _mixing(self, m: torch.Tensor) -> torch.Tensor:
        """The learned exchange between velocity channels, each channel's input turned to its orbit's first
        member's direction, one convolution for all, turned back: ``(B, V, S, S, C)``."""
        batch, count, size, _, channels = m.shape
        pairs = torch.cat([m, m[:, self.opposite]], -1)  # (B, V, S, S, 2C)
        orbit = F.one_hot(self.channel_orbits, self.orbit_count).to(m.dtype)  # (V, O)
        pairs = torch.cat([pairs, orbit[None, :, None, None].expand(batch, -1, size, size, -1)], -1)
        out = torch.empty_like(m)
        for k in range(4):  # the four directions, not the channels: each group in one convolution
            index = (self.channel_turns == k).nonzero().flatten()
            if len(index) == 0:
                continue
            group = pairs[:, index].rot90(-k, (2, 3))  # (B, n, S, S, 2C + O), turned to the canonical direction
            mixed = self.mix(group.flatten(0, 1).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            out[:, index] = mixed.view(batch, len(index), size, size, channels).rot90(k, (2, 3))
        return out

    def _lift(self, obs: torch.Tensor) -> torch.Tensor:
        """The view's features at every cone cell: ``(B, T, N_cone, 2 E)``."""
        batch, steps = obs.shape[:2]
        features = self.encoder(obs.flatten(0, 1))  # (BT, E, h, w)
        grid = self.cone_points[None].expand(features.shape[0], -1, -1, -1)  # (BT, N, 2, 2)
        sampled = F.grid_sample(features, grid, align_corners=False, padding_mode="border")  # (BT, E, N, 2)
        return sampled.permute(0, 2, 3, 1).flatten(2).view(batch, steps, len(self.cone_cells), -1)

    def _write(self, moved: torch.Tensor, lifted: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Write lifted features ``(B, N_cone, 2 E)`` into the cone cells of every velocity channel, gated."""
        batch, count, size, _, channels = moved.shape
        place = self.place[None].expand(batch, -1, -1)
        if self.action_embedding is not None:  # the ablation: the motion as an input, not a move of the map
            place = place + self.action_embedding(action)[:, None]
        content = torch.tanh(self.lift(torch.cat([lifted, place], -1)))  # (B, N, C)
        flat = moved.reshape(batch, count, size * size, channels)
        current = flat[:, :, self.cone_cells]  # (B, V, N, C)
        content = content[:, None].expand_as(current)
        gate = torch.sigmoid(self.gate(torch.cat([current, content], -1)))
        written = flat.clone()
        written[:, :, self.cone_cells] = current + gate * (content - current)
        return written.view_as(moved)

    def _readout(self, moved: torch.Tensor) -> torch.Tensor:
        """The view predicted from moved maps ``(B, V, S, S, C)``: ``(B, C_in, view, view)``."""
        pooled = moved.amax(1).permute(0, 3, 1, 2)  # (B, C, S, S)
        batch = pooled.shape[0]
        points = self.ray_points[None].expand(batch, -1, -1, -1)
        # grid_sample takes (column, row) = (ahead, left) coordinates
        samples = self.samples(F.grid_sample(pooled, points, align_corners=False))  # (B, 2 + D, K, W)
        block = torch.sigmoid(samples[:, 0])  # (B, K, W)
        wall = torch.sigmoid(samples[:, 1])
        covered = 1 - (1 - block[:, None] * self.block_rows[None, :, :, None]) * \
            (1 - wall[:, None] * self.wall_rows[None, :, :, None])  # (B, H, K, W)
        clear = torch.cumsum(torch.log1p(-covered.clamp(max=1 - 1e-6)), 2)
        before = torch.exp(F.pad(clear, (0, 0, 1, 0))[:, :, :-1])  # light reaching each sample
        weights = before * covered
        features = torch.einsum("bhkw,bdkw->bdhw", weights, samples[:, 2:])
        features = features + torch.exp(clear[:, :, -1])[:, None] * self.background[None]
        return self.decoder(features)

    # -- layouts and checks --------------------------------------------------------------------------------------
    @staticmethod
    def _internal(maps: torch.Tensor) -> torch.Tensor:
        return maps.permute(0, 1, 3, 4, 2).contiguous()

    @staticmethod
    def _public(maps: torch.Tensor) -> torch.Tensor:
        return maps.movedim(-1, -3)

    def _check_state(self, state: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        expected = (like.shape[0], self.num_velocities, self.hidden_channels, self.map_size, self.map_size)
        if not isinstance(state, torch.Tensor) or tuple(state.shape) != expected or state.dtype != like.dtype:
            got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise ValueError(f"state must be a {like.dtype} tensor of shape (B, V, C, S, S) = {expected}, got {got}")
        return state

    def _check(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = check_views(obs, self.in_channels, self.view_size)
        return obs, self._check_actions("actions", actions, obs.shape[0], steps=obs.shape[1])

    def _check_actions(self, name: str, actions: torch.Tensor, batch: int, steps: int | None = None) -> torch.Tensor:
        actions = check_action_sequence(name, actions, batch, "motion", steps)
        return check_motions(actions.reshape(-1), actions.numel(), self.gate.weight.device).view_as(actions)
