"""Wrappers for agents that need what the env knows about their own motion."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

ACTION_OFFSET = 128


class ActionChannels(gym.Wrapper):
    """Append the window displacement the env applied (``info["action"]``, ``(dx, dy)``) to the image as two
    constant uint8 channels holding ``dx + 128`` and ``dy + 128``, so that a policy that sees only
    observations can shift its memory by its own motion (:class:`fernn.agents.rl.policies.FERNNCore` with
    ``self_motion=True`` reads them). Needs an env whose ``info`` has ``"action"`` (MNIST World envs).

    Observation: ``uint8 (H, W, C + 2)``.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3 or space.dtype != np.uint8:
            raise ValueError(f"ActionChannels wraps uint8 (H, W, C) image observations, got {space}")
        self.observation_space = gym.spaces.Box(0, 255, (*space.shape[:2], space.shape[2] + 2), np.uint8)

    def _with_action(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if "action" not in info:
            raise KeyError("ActionChannels needs an env that reports the applied move in info['action'] "
                           "(the MNIST World envs do)")
        move = np.clip(np.asarray(info["action"], np.int64) + ACTION_OFFSET, 0, 255).astype(np.uint8)
        planes = np.broadcast_to(move, (*obs.shape[:2], 2))
        return np.concatenate([obs, planes], axis=-1)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        return self._with_action(obs, info), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._with_action(obs, info), reward, terminated, truncated, info
