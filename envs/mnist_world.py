"""``MNISTWorld-v0`` (FloWM's partially observed world) and ``MNISTWorldTrack-v0`` (an RL task that
needs memory of motion), with their native vector versions and the tracking oracle."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from fernn.envs.core import EnvBatch, CoreEnv, CoreVectorEnv
from fernn.envs.mnist import load_mnist
from fernn.envs.rendering import OCCLUDED_COLOUR, TARGET_COLOUR, WINDOW_COLOUR, draw_torus_box, tint, to_rgb
from fernn.envs.scenes import DigitBank, check_count
from fernn.envs.sprites import composite, render_layers
from fernn.envs.velocities import velocity_grid
from fernn.envs.world_scenes import WorldScenes

#: ``Discrete(9)`` actions: stay, then N, NE, E, SE, S, SW, W, NW (y grows downwards), times ``step_size``.
DIRECTIONS = np.array([(0, 0), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1)], np.int64)
ACTION_TYPES = ("discrete", "multidiscrete")


class WorldBatch(EnvBatch):
    """N MNIST worlds, each seen through its agent's window, rewarded for the new area it sees. A step
    moves the windows, advances the digits one frame and renders all N windows (every digit) in one
    batched op."""

    observation_channels = 1

    def __init__(self, num_envs: int, scenes: WorldScenes, *, action_type: str, world_in_info: bool) -> None:
        super().__init__(num_envs)
        if action_type not in ACTION_TYPES:
            raise ValueError(f"action_type must be one of {ACTION_TYPES}, got {action_type!r}")
        if not isinstance(world_in_info, bool):
            raise TypeError(f"world_in_info must be a bool, got {world_in_info!r}")
        self.scenes, self.world_in_info = scenes, world_in_info
        self.action_type = action_type
        step, size, world = scenes.step_size, scenes.window_size, scenes.world_size
        if action_type == "discrete":
            if step < 1:
                raise ValueError(f"step_size must be >= 1 for discrete actions, got {step}")
            self.single_action_space = spaces.Discrete(len(DIRECTIONS))
        else:
            self.single_action_space = spaces.MultiDiscrete([2 * step + 1, 2 * step + 1])
        self.single_observation_space = spaces.Box(0, 255, (size, size, self.observation_channels), np.uint8)
        blank = scenes.draw(num_envs, torch.Generator().manual_seed(0))
        self.scene = {key: torch.zeros_like(value) for key, value in blank.items()}
        self.positions = torch.zeros(num_envs, 2, dtype=torch.long)
        self.t = torch.zeros(num_envs, dtype=torch.long)
        self.last_action = np.zeros((num_envs, 2), np.int64)
        self.visited = np.zeros((num_envs, world, world), bool)
        self.layers = torch.zeros(num_envs, scenes.num_digits, size, size, dtype=torch.uint8)

    def reset_envs(self, indices: np.ndarray) -> None:
        drawn = [self.scenes.draw(1, self.generators[i]) for i in indices]
        starts = torch.stack([torch.randint(self.scenes.world_size, (2,), generator=self.generators[i])
                              for i in indices])
        index = torch.as_tensor(indices)
        for key in self.scene:
            self.scene[key][index] = torch.cat([d[key] for d in drawn])
        self.positions[index] = self._start_positions(index, starts) % self.scenes.world_size
        self.t[index] = 0
        self.last_action[indices] = 0
        self.visited[indices] = False
        self._render(index)

    def _start_positions(self, index: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        """Where the windows of scenes ``index`` start ``(len(index), 2)``, given uniformly ``drawn`` ones."""
        return drawn

    def _render(self, index: torch.Tensor | None = None) -> None:
        """Render the windows of scenes ``index`` (``None``: every scene, without gathering the scenes' tensors,
        as every step does) at their current positions and times."""
        every = index is None
        index = torch.arange(self.num_envs) if every else index
        scene = self.scene if every else {key: value[index] for key, value in self.scene.items()}
        positions, times = (self.positions, self.t) if every else (self.positions[index], self.t[index])
        layers = self.scenes.window_layers(scene, positions[:, None], times[:, None])[:, :, 0]
        if every:
            self.layers = layers
        else:
            self.layers[index] = layers
        cols = (positions[:, 0, None] + torch.arange(self.scenes.window_size)) % self.scenes.world_size
        rows = (positions[:, 1, None] + torch.arange(self.scenes.window_size)) % self.scenes.world_size
        self.visited[index.numpy()[:, None, None], rows.numpy()[:, :, None], cols.numpy()[:, None, :]] = True

    def occluded(self) -> np.ndarray:
        """``(N,)`` bool: whose window is dark now (never, in an exploration world)."""
        return np.zeros(self.num_envs, bool)

    def _channels(self) -> list[torch.Tensor]:
        """The observation's channels, each ``(N, H, W)`` uint8: the window's composite picture."""
        return [composite(self.layers[:, :, None])[:, 0]]

    def observe(self) -> np.ndarray:
        observations = torch.stack(self._channels(), -1).numpy()
        observations[self.occluded()] = 0  # a gap: the window goes dark, the world goes on
        return observations

    def displacement(self, actions: np.ndarray) -> np.ndarray:
        """Window moves ``(N, 2)`` of ``(dx, dy)`` for the actions of the action space."""
        if self.action_type == "discrete":
            return DIRECTIONS[actions.astype(np.int64)] * self.scenes.step_size
        return actions.astype(np.int64) - self.scenes.step_size

    def advance(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        moves = self.displacement(actions) * active[:, None]
        seen_before = self.visited.sum((1, 2))
        self.positions = (self.positions + torch.as_tensor(moves)) % self.scenes.world_size
        self.t = self.t + torch.as_tensor(active)
        self.last_action = moves
        self._render()
        info: dict[str, np.ndarray] = {"position": self.positions.numpy().copy(), "action": moves.copy(),
                                       "t": self.t.numpy().copy(), "occluded": self.occluded()}
        reward = self._reward(seen_before, info)
        if self.world_in_info:
            info["world"] = self.world_frames()
        none = np.zeros(self.num_envs, bool)
        return reward, none, none.copy(), info

    def _reward(self, seen_before: np.ndarray, info: dict[str, np.ndarray]) -> np.ndarray:
        """``(N,)`` float32: the fraction of the world seen for the first time this step (``info`` gains
        ``coverage``, the fraction seen so far)."""
        area = self.scenes.world_size ** 2
        info["coverage"] = (self.visited.sum((1, 2)) / area).astype(np.float32)
        return ((self.visited.sum((1, 2)) - seen_before) / area).astype(np.float32)

    def world_frames(self) -> np.ndarray:
        """Whole-world frames ``(N, H, W)`` uint8 at each scene's current time."""
        shifts = self.scenes.digit_shifts(self.scene, self.t[:, None])
        return composite(render_layers(self.scene["canvases"], shifts)).numpy()[:, 0]

    def reset_info(self, index: int) -> dict[str, Any]:
        info = {"position": self.positions[index].numpy().copy(), "action": np.zeros(2, np.int64), "t": 0,
                "occluded": False}
        if self.world_in_info:
            info["world"] = self.world_frames()[index]
        return info

    def render_rgb(self, index: int) -> np.ndarray:
        world = self.scenes.world_size
        scale = max(1, 400 // world)
        times = self.t[index, None, None]
        scene = {key: value[index:index + 1] for key, value in self.scene.items()}
        layers = render_layers(scene["canvases"], self.scenes.digit_shifts(scene, times[0]))[0, :, 0]
        rgb = self._tinted(to_rgb(composite(layers[None, :, None])[0, 0].numpy(), scale), layers, scale)
        x, y = self.positions[index].tolist()
        colour = OCCLUDED_COLOUR if self.occluded()[index] else WINDOW_COLOUR
        return draw_torus_box(rgb, x, y, self.scenes.window_size, world, scale, colour)

    def _tinted(self, rgb: np.ndarray, layers: torch.Tensor, scale: int) -> np.ndarray:
        """The world picture ``rgb`` with what this task marks (nothing here) tinted; ``layers`` are the
        digits' ``(D, H, W)`` layers."""
        return rgb


class TrackBatch(WorldBatch):
    """N MNIST worlds whose agent must keep the target digit (digit 0, seen in a second channel) in its
    window: the reward is the fraction of the target inside it. Optional gaps darken the window for
    ``gap_length`` steps of every ``gap_every`` while the world goes on."""

    observation_channels = 2

    def __init__(self, num_envs: int, scenes: WorldScenes, *, action_type: str, world_in_info: bool,
                 gap_every: int = 0, gap_length: int = 0) -> None:
        self.gap_every = check_count("gap_every", gap_every, minimum=0)
        self.gap_length = check_count("gap_length", gap_length, minimum=0)
        if self.gap_length and (not self.gap_every or self.gap_length >= self.gap_every):
            raise ValueError(f"gap_length must be < gap_every (each period starts visible); got gap_length="
                             f"{gap_length}, gap_every={gap_every}")
        super().__init__(num_envs, scenes, action_type=action_type, world_in_info=world_in_info)

    def _start_positions(self, index: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        """The target starts in the middle of the window."""
        centre = self.scene["starts"][index, 0] + self.scene["centre"][index, 0].round().long()
        return centre - self.scenes.window_size // 2

    def occluded(self) -> np.ndarray:
        """``(N,)`` bool: whose window is dark now (the last ``gap_length`` steps of every ``gap_every``)."""
        if not self.gap_length:
            return np.zeros(self.num_envs, bool)
        return (self.t.numpy() % self.gap_every) >= self.gap_every - self.gap_length

    def _channels(self) -> list[torch.Tensor]:
        """The window's picture and the target's layer alone."""
        return [*super()._channels(), self.layers[:, 0]]

    def _reward(self, seen_before: np.ndarray, info: dict[str, np.ndarray]) -> np.ndarray:
        """``(N,)`` float32: the fraction of the target's mass inside the window (``info`` gains
        ``target_position``)."""
        info["target_position"] = self._target_positions().numpy()
        return (self.layers[:, 0].sum((-2, -1), dtype=torch.float32) / self.scene["mass"][:, 0]).numpy().astype(
            np.float32)

    def _target_positions(self) -> torch.Tensor:
        return (self.scene["starts"][:, 0] + self.scene["velocities"][:, 0] * self.t[:, None]) % self.scenes.world_size

    def reset_info(self, index: int) -> dict[str, Any]:
        return {**super().reset_info(index), "target_position": self._target_positions()[index].numpy()}

    def _tinted(self, rgb: np.ndarray, layers: torch.Tensor, scale: int) -> np.ndarray:
        return tint(rgb, layers[0].numpy(), TARGET_COLOUR, scale)

    def oracle_actions(self) -> np.ndarray:
        """The tracking oracle: for each scene, the action that best centres the window on the target's
        centre of mass one frame ahead (it knows the target's true position and velocity)."""
        world, size = self.scenes.world_size, self.scenes.window_size
        ahead = self.scene["starts"][:, 0] + self.scene["velocities"][:, 0] * (self.t[:, None] + 1)
        wanted = ahead.float() + self.scene["centre"][:, 0] - size / 2
        delta = (wanted - self.positions.float() + world / 2) % world - world / 2
        step = self.scenes.step_size
        if self.action_type == "multidiscrete":
            return (delta.round().clamp(-step, step).long() + step).numpy()
        direction = torch.where(delta.abs() >= step / 2, delta.sign(), torch.zeros_like(delta)).long().numpy()
        return np.argmax((DIRECTIONS[None] == direction[:, None]).all(-1), axis=1)


def _world_scenes(split: str, source: str, data_dir: Any, download: bool, **kwargs: Any) -> WorldScenes:
    digits = DigitBank(load_mnist(split, source=source, data_dir=data_dir, download=download))
    return WorldScenes(digits, seq_len=1, **kwargs)


def make_world_batch(num_envs: int, *, split: str = "train", source: str = "auto",
                     data_dir: str | os.PathLike | None = None, download: bool = False, world_size: int = 50,
                    window_size: int = 32, num_digits: int = 5, velocities: Any = 1, step_size: int = 10,
                    action_type: str = "discrete", world_in_info: bool = False) -> WorldBatch:
    scenes = _world_scenes(split, source, data_dir, download, world_size=world_size, window_size=window_size,
                           num_digits=num_digits, velocities=velocities, step_size=step_size)
    return WorldBatch(num_envs, scenes, action_type=action_type, world_in_info=world_in_info)


def make_track_batch(num_envs: int, *, split: str = "train", source: str = "auto",
                    data_dir: str | os.PathLike | None = None, download: bool = False, world_size: int = 50,
                    window_size: int = 32, num_digits: int = 5, velocities: Any = 2, step_size: int = 2,
                    action_type: str = "discrete", world_in_info: bool = False, target_velocities: Any = None,
                    gap_every: int = 0, gap_length: int = 0) -> TrackBatch:
    check_count("num_digits", num_digits)
    moving = [v for v in velocity_grid(velocities) if v != (0, 0)] if isinstance(velocities, int) and velocities > 0 \
        else None
    scenes = _world_scenes(split, source, data_dir, download, world_size=world_size, window_size=window_size,
                           num_digits=num_digits, velocities=velocities, step_size=step_size,
                           target_velocities=moving if target_velocities is None else target_velocities)
    return TrackBatch(num_envs, scenes, action_type=action_type, world_in_info=world_in_info,
                      gap_every=gap_every, gap_length=gap_length)


class MNISTWorldEnv(CoreEnv):
    """FloWM's partially observed MNIST World: a torus of moving digits seen through a window the
    agent moves.

    ## Description
    ``num_digits`` MNIST digits live on a ``world_size`` torus, each moving with its own integer
    velocity from ``velocities`` (``0``: the static world). The agent sees a ``window_size`` window;
    each action moves the window, then the digits advance one frame. The latent map of a world model
    must move opposite to the agent's actions (self-motion) and keep what left the window.

    ## Action Space
    ``Discrete(9)`` (default): stay, or N, NE, E, SE, S, SW, W, NW by ``step_size`` px (y grows
    downwards). ``action_type="multidiscrete"``: ``MultiDiscrete([2s+1, 2s+1])``, the move is
    ``(a[0] - s, a[1] - s)`` for ``s = step_size`` (FloWM's integer actions).

    ## Observation Space
    | shape | dtype | range | content |
    |---|---|---|---|
    | ``(window_size, window_size, 1)`` | uint8 | 0..255 | the window (digits summed, clipped) |

    ## Rewards
    The fraction of the world seen for the first time this step (exploration; ``info["coverage"]``).
    The world-model datasets (:class:`fernn.envs.MNISTWorldDataset`) come from the same generator.

    ## Starting State
    Digits and velocities drawn uniformly; window at a uniform position; ``info`` has ``position``
    (window top-left ``(x, y)``), ``action`` (the ``(dx, dy)`` applied), ``t`` and, with
    ``world_in_info=True``, the full ``world`` frame.

    ## Episode End
    Never terminates; truncated after ``max_episode_steps`` (100).

    ## Arguments
    ``gym.make("MNISTWorld-v0", velocities=0)`` (or the id ``MNISTWorldStatic-v0``)

    | argument | default | meaning |
    |---|---|---|
    | ``split``, ``source``, ``data_dir``, ``download`` | as FlowingMNIST-v0 | digits |
    | ``world_size`` | 50 | torus side (>= 28) |
    | ``window_size`` | 32 | window side (<= world_size) |
    | ``num_digits`` | 5 | digits in the world |
    | ``velocities`` | 1 | digit velocity set: grid radius or list of ``(vx, vy)`` |
    | ``step_size`` | 10 | pixels per move (FloWM: 10) |
    | ``action_type`` | ``"discrete"`` | or ``"multidiscrete"`` |
    | ``world_in_info`` | False | put the full world frame in ``info["world"]`` |

    ## Vectorized environment
    ``gym.make_vec("MNISTWorld-v0", num_envs=8, vectorization_mode="vector_entry_point")``.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 8, "render_reveals_state": True}
    make_batch = staticmethod(make_world_batch)

    def get_keys_to_action(self) -> dict[tuple[int, ...], int]:
        """Arrow keys (and their diagonal pairs) for ``gymnasium.utils.play``; no key: stay."""
        return keys_to_action()

    def action_moves(self) -> np.ndarray:
        """``(9, 2)`` int64: the window move ``(dx, dy)`` of each ``Discrete`` action, the table a planner
        (:class:`fernn.agents.planning.CEMPlanner`) imagines with."""
        if self.batch.action_type != "discrete":
            raise ValueError("action_moves() is the table of Discrete actions; this env has action_type="
                             f"{self.batch.action_type!r} (make it with action_type='discrete' to plan)")
        return self.batch.displacement(np.arange(len(DIRECTIONS)))


class MNISTWorldTrackEnv(MNISTWorldEnv):
    """Track one target digit among moving distractors in MNIST World: an RL task that needs memory.

    ## Description
    As ``MNISTWorld-v0`` (defaults: 5 digits with velocities ``|vx|, |vy| <= 2``, ``step_size`` 2), but
    digit 0 is the *target*, marked in a second observation channel. With the default velocities (a
    radius) the target always moves: its velocity is drawn from the non-zero ones; pass
    ``target_velocities`` (or ``velocities`` as a list) to choose its set yourself, ``(0, 0)`` included. The window starts centred on the target. When the agent falls behind, the target leaves
    the window, so acting well means remembering where it was heading.

    ## Action Space
    As ``MNISTWorld-v0`` (``Discrete(9)`` moves by ``step_size`` = 2 px, matching the fastest digit).

    ## Observation Space
    | shape | dtype | range | content |
    |---|---|---|---|
    | ``(window_size, window_size, 2)`` | uint8 | 0..255 | channel 0: the window; channel 1: the target alone |

    ## Rewards
    Each step, the fraction of the target's pixel mass inside the window (0..1). Bounds over 100
    seeded episodes (README): a random policy and the scripted oracle
    (``env.unwrapped.oracle_action()``, which knows the target's true position and velocity).

    ## Starting State
    As ``MNISTWorld-v0``, the window centred on the target; ``info["target_position"]`` is the target's
    top-left ``(x, y)``.

    ## Episode End
    Never terminates; truncated after ``max_episode_steps`` (100).

    ## Arguments
    As ``MNISTWorld-v0``, with defaults ``velocities=2`` and ``step_size=2``, and:

    | argument | default | meaning |
    |---|---|---|
    | ``target_velocities`` | the non-zero velocities of ``velocities`` when it is a radius, else ``velocities`` | the target's velocity set (a radius or a list of ``(vx, vy)``): ``fernn.envs.unseen_velocities(1, 2)`` tests velocities never seen in training |
    | ``gap_every``, ``gap_length`` | 0, 0 | occlusion: the window goes dark (both channels zero) for the last ``gap_length`` steps of every ``gap_every``; the world and the reward go on, so only a remembered motion says where the target went. ``info["occluded"]`` says when |

    ``MNISTWorldTrackOccluded-v0`` is the variant with ``gap_every=10, gap_length=4``::

        gym.make("MNISTWorldTrackOccluded-v0", target_velocities=fernn.envs.unseen_velocities(1, 2), gap_length=6)

    ## Vectorized environment
    ``gym.make_vec("MNISTWorldTrack-v0", num_envs=8, vectorization_mode="vector_entry_point")``;
    its ``oracle_actions()`` gives the oracle's actions for all scenes.

    ## Version History
    * v0: initial version (``target_velocities``, ``gap_every``, ``gap_length`` added, defaults unchanged).
    """

    make_batch = staticmethod(make_track_batch)

    def oracle_action(self) -> np.ndarray | int:
        """The oracle's action for the current state (see the class docstring)."""
        action = self.batch.oracle_actions()[0]
        return int(action) if self.batch.action_type == "discrete" else action


class MNISTWorldVectorEnv(CoreVectorEnv):
    """``MNISTWorld-v0`` with N worlds stepped in one batched op (see :class:`MNISTWorldEnv`)."""

    make_batch = staticmethod(make_world_batch)


class MNISTWorldTrackVectorEnv(CoreVectorEnv):
    """``MNISTWorldTrack-v0`` with N worlds stepped in one batched op (see :class:`MNISTWorldTrackEnv`)."""

    make_batch = staticmethod(make_track_batch)

    def oracle_actions(self) -> np.ndarray:
        """The oracle's actions for all scenes."""
        return self.batch.oracle_actions()


def keys_to_action() -> dict[tuple[int, ...], int]:
    """pygame key combinations -> ``Discrete(9)`` actions (arrow keys; two arrows for diagonals)."""
    from fernn._extras import require

    pygame = require("pygame", "play", "keyboard play")

    up, down, left, right = pygame.K_UP, pygame.K_DOWN, pygame.K_LEFT, pygame.K_RIGHT
    combos = {(): 0, (up,): 1, (up, right): 2, (right,): 3, (down, right): 4, (down,): 5, (down, left): 6,
              (left,): 7, (up, left): 8}
    return {tuple(sorted(keys)): action for keys, action in combos.items()}
