"""``KTHCamera-v0``: KTH action recognition with simulated camera motion, as a supervised env."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from fernn.envs.core import EnvBatch, CoreEnv, CoreVectorEnv
from fernn.envs.datasets import KTHCameraDataset
from fernn.envs.kth import ACTIONS
from fernn.envs.rendering import to_rgb


class KTHBatch(EnvBatch):
    """N classification episodes: a clip per scene, one frame per step, scored on the last step."""

    def __init__(self, num_envs: int, clips: KTHCameraDataset) -> None:
        super().__init__(num_envs)
        self.dataset = clips
        size = clips.frames.shape[-1]
        self.frames = np.zeros((num_envs, clips.seq_len, size, size), np.uint8)
        self.labels = np.zeros(num_envs, np.int64)
        self.velocities = np.zeros((num_envs, 2), np.int64)
        self.t = np.zeros(num_envs, np.int64)
        self.single_observation_space = spaces.Box(0, 255, (size, size, 1), np.uint8)
        self.single_action_space = spaces.Discrete(len(ACTIONS))

    def reset_envs(self, indices: np.ndarray) -> None:
        drawn = [self.dataset.clips(1, self.generators[i]) for i in indices]
        self.frames[indices] = torch.cat([d["clips"] for d in drawn]).numpy()
        self.labels[indices] = torch.cat([d["labels"] for d in drawn]).numpy()
        self.velocities[indices] = torch.cat([d["velocities"] for d in drawn]).numpy()
        self.t[indices] = 0

    def observe(self) -> np.ndarray:
        return self.frames[np.arange(self.num_envs), self.t][..., None]

    def advance(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        last = self.frames.shape[1] - 1
        scored = active & (self.t == last)
        correct = actions.astype(np.int64) == self.labels
        reward = np.where(scored & correct, 1.0, 0.0).astype(np.float32)
        self.t = np.where(active, np.minimum(self.t + 1, last), self.t)
        return reward, scored, np.zeros(self.num_envs, bool), {"t": self.t.copy()}

    def reset_info(self, index: int) -> dict[str, Any]:
        return {"t": 0}

    def final_info(self, index: int) -> dict[str, Any]:
        return {"label": int(self.labels[index]), "action_name": ACTIONS[self.labels[index]],
                "camera_velocity": self.velocities[index].copy()}

    def render_rgb(self, index: int) -> np.ndarray:
        frame = self.frames[index, self.t[index]]
        return to_rgb(frame, max(1, 256 // frame.shape[-1]))


def make_kth_batch(num_envs: int, *, split: str = "train", data_dir: str | os.PathLike | None = None,
                  download: bool = False, frame_size: int = 32, seq_len: int = 16, step: int = 2,
                  velocities: Any = 2) -> KTHBatch:
    clips = KTHCameraDataset(split, data_dir=data_dir, download=download, frame_size=frame_size, seq_len=seq_len,
                             step=step, velocities=velocities)
    return KTHBatch(num_envs, clips)


class KTHCameraEnv(CoreEnv):
    """KTH action recognition with simulated camera motion (the FERNN paper's Table 2 task).

    ## Description
    One episode is one clip: ``seq_len`` grayscale frames taken every ``step`` frames from an annotated
    KTH segment of a person of ``split``, translated (with wrap-around) by a per-clip camera velocity
    ``v * t`` drawn from ``velocities``, flipped horizontally at random in the train split. The CLI
    name ``kth-camera`` maps to this id. Needs the KTH data (see the README; ``download=True``).

    ## Action Space
    ``Discrete(6)``: a class guess (walking, jogging, running, boxing, handwaving, handclapping).

    ## Observation Space
    | shape | dtype | range | content |
    |---|---|---|---|
    | ``(frame_size, frame_size, 1)`` | uint8 | 0..255 | frame ``t`` of the clip |

    ## Rewards
    The rule: frames ``0 .. seq_len - 1`` are shown one per step; the guess made on the step *after*
    the last frame was shown (step ``seq_len``) is scored: reward 1 if it is the clip's action, else 0.
    Earlier guesses earn nothing.

    ## Starting State
    A uniformly drawn segment, start frame, flip and camera velocity.

    ## Episode End
    Terminated on the scored step; its ``info`` has ``label``, ``action_name`` and ``camera_velocity``.

    ## Arguments
    ``gym.make("KTHCamera-v0", data_dir="~/data", velocities=1)``

    | argument | default | meaning |
    |---|---|---|
    | ``split`` | ``"train"`` | persons 1-16 (``"train"``), 17-20 (``"val"``), 21-25 (``"test"``) |
    | ``data_dir`` / ``download`` | ``None`` / ``False`` | folder holding ``kth/``; fetch the archives when missing |
    | ``frame_size`` | 32 | frame side (the paper's Table 2; 64 is the cache size) |
    | ``seq_len`` / ``step`` | 16 / 2 | frames per clip and stride |
    | ``velocities`` | 2 | camera velocity set: grid radius or list of ``(vx, vy)`` |

    ## Vectorized environment
    ``gym.make_vec("KTHCamera-v0", num_envs=8, vectorization_mode="vector_entry_point")``.

    ## Version History
    * v0: initial version.
    """

    make_batch = staticmethod(make_kth_batch)


class KTHCameraVectorEnv(CoreVectorEnv):
    """``KTHCamera-v0`` with N clips stepped together (see :class:`KTHCameraEnv`)."""

    make_batch = staticmethod(make_kth_batch)
