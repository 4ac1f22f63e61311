"""``FlowingMNIST-v0`` and ``RotatingMNIST-v0``: the FERNN paper's next-frame prediction tasks as
supervised environments (and their native vector versions)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from fernn.envs.core import EnvBatch, CoreEnv, CoreVectorEnv
from fernn.envs.mnist import load_mnist
from fernn.envs.rendering import side_by_side, to_rgb
from fernn.envs.scenes import DigitBank, RotationScenes, TranslationScenes

PAPER_ANGULAR_VELOCITIES = (-40, -30, -20, -10, 0, 10, 20, 30, 40)


class PredictionBatch(EnvBatch):
    """N next-frame prediction episodes: the whole sequence of each scene is rendered at reset (all
    resetting scenes in one batched op); a step scores the predicted next frame and moves on."""

    def __init__(self, num_envs: int, scenes: TranslationScenes | RotationScenes) -> None:
        super().__init__(num_envs)
        if scenes.seq_len < 2:
            raise ValueError(f"seq_len must be >= 2 (one frame to see, one to predict), got {scenes.seq_len}")
        self.scenes = scenes
        size = scenes.frame_size if isinstance(scenes, RotationScenes) else scenes.image_size
        self.frames = np.zeros((num_envs, scenes.seq_len, size, size), np.uint8)
        self.t = np.zeros(num_envs, np.int64)
        self.labels = np.zeros((num_envs, scenes.num_digits), np.int64)
        velocity_shape = (2,) if isinstance(scenes, TranslationScenes) else ()
        self.velocities = np.zeros((num_envs, scenes.num_digits, *velocity_shape),
                                   np.int64 if velocity_shape else np.float32)
        self.predictions = np.zeros((num_envs, size, size), np.float32)
        self.single_observation_space = spaces.Box(0, 255, (size, size, 1), np.uint8)
        self.single_action_space = spaces.Box(0.0, 1.0, (size, size, 1), np.float32)

    def reset_envs(self, indices: np.ndarray) -> None:
        drawn = [self.scenes.draw(1, self.generators[i]) for i in indices]
        scene = self.scenes.render({key: torch.cat([d[key] for d in drawn]) for key in drawn[0]})
        self.frames[indices] = scene.frames.numpy()
        self.labels[indices] = scene.labels.numpy()
        self.velocities[indices] = scene.velocities.numpy()
        self.predictions[indices] = 0.0
        self.t[indices] = 0

    def observe(self) -> np.ndarray:
        return self.frames[np.arange(self.num_envs), self.t][..., None]

    def advance(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        following = np.minimum(self.t + 1, self.frames.shape[1] - 1)
        truth = self.frames[np.arange(self.num_envs), following].astype(np.float32) / 255.0
        mse = np.square(actions[..., 0] - truth).mean((1, 2))
        self.predictions[active] = actions[active, ..., 0]
        self.t = np.where(active, following, self.t)
        terminated = self.t == self.frames.shape[1] - 1
        return -mse, terminated, np.zeros(self.num_envs, bool), {"mse": mse, "t": self.t.copy()}

    def reset_info(self, index: int) -> dict[str, Any]:
        return {"t": 0}

    def final_info(self, index: int) -> dict[str, Any]:
        return {"digits": self.labels[index].copy(), "velocities": self.velocities[index].copy()}

    def render_rgb(self, index: int) -> np.ndarray:
        scale = max(1, 224 // self.frames.shape[-1])
        truth = to_rgb(self.frames[index, self.t[index]], scale)
        prediction = to_rgb(np.rint(self.predictions[index] * 255).astype(np.uint8), scale)
        return side_by_side(truth, prediction)


def make_flowing_batch(num_envs: int, *, split: str = "train", source: str = "auto",
                      data_dir: str | os.PathLike | None = None, download: bool = False, image_size: int = 28,
                      num_digits: int = 2, seq_len: int = 20, velocities: Any = 2,
                      boundary: str = "wrap") -> PredictionBatch:
    digits = DigitBank(load_mnist(split, source=source, data_dir=data_dir, download=download))
    return PredictionBatch(num_envs, TranslationScenes(digits, image_size=image_size, num_digits=num_digits,
                                                      seq_len=seq_len, velocities=velocities, boundary=boundary))


def make_rotating_batch(num_envs: int, *, split: str = "train", source: str = "auto",
                       data_dir: str | os.PathLike | None = None, download: bool = False, image_size: int = 28,
                       pad: int = 6, num_digits: int = 2, seq_len: int = 20,
                       angular_velocities: Any = PAPER_ANGULAR_VELOCITIES) -> PredictionBatch:
    digits = DigitBank(load_mnist(split, source=source, data_dir=data_dir, download=download))
    return PredictionBatch(num_envs, RotationScenes(digits, image_size=image_size, pad=pad, num_digits=num_digits,
                                                   seq_len=seq_len, angular_velocities=angular_velocities))


class FlowingMNISTEnv(CoreEnv):
    """Next-frame prediction on Flowing MNIST (translation flows), the FERNN paper's Table 1 task.

    ## Description
    ``num_digits`` MNIST digits move on an ``image_size`` torus, each with its own integer velocity
    ``(vx, vy)`` drawn from ``velocities`` (pixels per frame; wrap-around; frames are the digits summed
    and clipped). One episode is one sequence of ``seq_len`` frames. The agent sees frame ``t`` and
    acts with its prediction of frame ``t + 1``.

    ## Action Space
    ``Box(0, 1, (image_size, image_size, 1), float32)``: the predicted next frame.

    ## Observation Space
    | shape | dtype | range | content |
    |---|---|---|---|
    | ``(image_size, image_size, 1)`` | uint8 | 0..255 | frame ``t`` |

    ## Rewards
    ``-MSE`` between the action and the true frame ``t + 1`` (pixels in [0, 1]); ``info["mse"]``.

    ## Starting State
    Digits drawn uniformly from the ``split`` of the MNIST ``source``, uniform start positions, one
    velocity per digit drawn uniformly from ``velocities``.

    ## Episode End
    Terminated after ``seq_len - 1`` steps (the last frame has been predicted); never truncated. The
    last step's ``info`` adds ``digits`` (labels) and ``velocities`` ``(num_digits, 2)``.

    ## Arguments
    ``gym.make("FlowingMNIST-v0", velocities=1, seq_len=20)``

    | argument | default | meaning |
    |---|---|---|
    | ``split`` | ``"train"`` | MNIST digits: ``"train"`` or ``"test"`` |
    | ``source`` | ``"auto"`` | ``"embedded"`` (5k digits shipped), ``"full"`` (official IDX) or ``"auto"`` |
    | ``data_dir`` / ``download`` | ``None`` / ``False`` | where full MNIST lives; fetch it when missing |
    | ``image_size`` | 28 | torus side (>= 28) |
    | ``num_digits`` | 2 | digits per sequence |
    | ``seq_len`` | 20 | frames per episode (>= 2) |
    | ``velocities`` | 2 | grid radius (``|vx|, |vy| <= 2``) or a list of ``(vx, vy)``; e.g. out-of-distribution sets |
    | ``boundary`` | ``"wrap"`` | ``"wrap"`` (a torus) or ``"bounce"`` (digits reflect off the borders; ``image_size`` > 28) |

    ## Vectorized environment
    ``gym.make_vec("FlowingMNIST-v0", num_envs=8, vectorization_mode="vector_entry_point")`` renders
    and steps all scenes in batched ops (next-step autoreset, per-env seeds ``seed + i``).

    ## Version History
    * v0: initial version (``boundary`` added, default unchanged).
    """

    make_batch = staticmethod(make_flowing_batch)


class RotatingMNISTEnv(CoreEnv):
    """Next-frame prediction on Rotating MNIST (rotation flows), the FERNN paper's rotation task.

    ## Description
    ``num_digits`` MNIST digits, centred, each rotating about the frame centre with its own angular
    velocity (degrees per frame, drawn from ``angular_velocities``) from a uniform start angle; frames
    are zero-padded by ``pad`` px so rotations stay inside (28 -> 40 px). A positive angle turns like
    ``torch.rot90(img, 1, (-2, -1))``. One episode is one sequence; the agent predicts the next frame.

    ## Action Space
    ``Box(0, 1, (S, S, 1), float32)`` with ``S = image_size + 2 pad``: the predicted next frame.

    ## Observation Space
    | shape | dtype | range | content |
    |---|---|---|---|
    | ``(S, S, 1)`` | uint8 | 0..255 | frame ``t`` |

    ## Rewards
    ``-MSE`` against the true next frame; ``info["mse"]``.

    ## Starting State
    Digits from the MNIST ``split``; angular velocities uniform over ``angular_velocities``; start
    angles uniform in [0, 360).

    ## Episode End
    Terminated after ``seq_len - 1`` steps; the last ``info`` adds ``digits`` and ``velocities`` (deg/frame).

    ## Arguments
    ``gym.make("RotatingMNIST-v0", angular_velocities=[-10, 0, 10])``

    | argument | default | meaning |
    |---|---|---|
    | ``split``, ``source``, ``data_dir``, ``download`` | as FlowingMNIST-v0 | digits |
    | ``image_size`` | 28 | digit area (>= 28) |
    | ``pad`` | 6 | zero padding per side (frame = 40 px) |
    | ``num_digits`` | 2 | digits per sequence |
    | ``seq_len`` | 20 | frames per episode |
    | ``angular_velocities`` | -40..40 step 10 | degrees per frame (paper Table 1) |

    ## Vectorized environment
    ``gym.make_vec("RotatingMNIST-v0", num_envs=8, vectorization_mode="vector_entry_point")``.

    ## Version History
    * v0: initial version.
    """

    make_batch = staticmethod(make_rotating_batch)


class FlowingMNISTVectorEnv(CoreVectorEnv):
    """``FlowingMNIST-v0`` with N scenes rendered and stepped in batched ops (see :class:`FlowingMNISTEnv`)."""

    make_batch = staticmethod(make_flowing_batch)


class RotatingMNISTVectorEnv(CoreVectorEnv):
    """``RotatingMNIST-v0`` with N scenes rendered and stepped in batched ops (see :class:`RotatingMNISTEnv`)."""

    make_batch = staticmethod(make_rotating_batch)
