"""Wrappers for agents that need what the env knows about their own motion."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from fernn.envs.image_spaces import read_image_space

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
        height, width, channels = read_image_space(env.observation_space, "ActionChannels", channels_last=True).hwc
        self.observation_space = gym.spaces.Box(0, 255, (height, width, channels + 2), np.uint8)

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


#: observations whose values never exceed this are symbolic codes, not pixels (MiniGrid's "image": 0..10)
SYMBOLIC_MAX = 16


class ImageKey(gym.ObservationWrapper):
    """Keep one image of Dict observations (SB3's ``MultiInputPolicy`` names them the same way): the policy sees
    ``obs[key]``, a uint8 ``(H, W, C)`` image; the other keys are dropped.

    A first observation whose values never exceed 16 is a grid of symbolic codes (MiniGrid's ``image`` holds object,
    colour and state indices 0..10), not pixels: a warning says so once; MiniGrid's ``RGBImgPartialObsWrapper``
    gives the same egocentric view as pixels.
    """

    def __init__(self, env: gym.Env, key: str) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict):
            raise ValueError(f"--obs-key {key!r} picks an image of Dict observations; this env observes {space}")
        images = [name for name, sub in space.spaces.items() if isinstance(sub, gym.spaces.Box) and len(sub.shape) in (2, 3)]
        if key not in space.spaces:
            raise ValueError(f"--obs-key {key!r} is not a key of the observations; its keys: {', '.join(space.spaces)} "
                             f"(images: {', '.join(images) or 'none'})")
        if key not in images:
            raise ValueError(f"--obs-key {key!r} is {space.spaces[key]}, not an image; the images: "
                             f"{', '.join(images) or 'none'}")
        self.key, self.observation_space = key, space.spaces[key]
        self._checked = False

    def observation(self, observation: dict[str, Any]) -> np.ndarray:
        image = np.asarray(observation[self.key])
        if not self._checked:
            self._checked = True
            if image.size and image.max() <= SYMBOLIC_MAX:
                import warnings

                warnings.warn(f"observations[{self.key!r}] hold values 0..{int(image.max())}: symbolic codes, not pixels "
                              "(a FERNN sees them as nearly black images); MiniGrid gives pixels with "
                              "minigrid.wrappers.RGBImgPartialObsWrapper", stacklevel=2)
        return image


def with_channel_axis(env: gym.Env) -> gym.Env:
    """Give 2-D ``(H, W)`` image observations a channel axis: ``(H, W, 1)`` (Gymnasium's ``ReshapeObservation``)."""
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 2:
        raise ValueError(f"--add-channel gives 2-D (H, W) images a channel axis; this env observes {space}")
    return gym.wrappers.ReshapeObservation(env, (*space.shape, 1))


def declared(env: gym.Env | gym.vector.VectorEnv, name: str) -> Any:
    """What ``env`` declares as ``name`` (``action_moves``, ``first_person``, ...): from its outermost wrapper that
    has it, down to the env itself (``get_wrapper_attr``), so a wrapper can declare it for an env it does not own;
    ``None`` when nothing does."""
    try:
        return env.get_wrapper_attr(name)
    except AttributeError:
        return getattr(getattr(env, "unwrapped", env), name, None)
