"""One reader of image observation spaces, used wherever fernn takes images from an env: the SB3 feature
extractors and policies, trajectory collection, :class:`fernn.envs.wrappers.ActionChannels` and the planner.

What counts as an image is what Stable-Baselines3's ``is_image_space`` accepts (a 3-D ``Box``, uint8 in
[0, 255]; with ``floats=True`` any 3-D ``Box``, SB3's ``normalize_images=False``), and the channel axis is
the smallest one, as SB3's ``is_image_space_channels_first`` decides, unless the caller knows the layout
(the envs' ``(H, W, C)``). Everything else gets one error naming what was given, what is accepted and the
wrapper or flag that turns it into an image.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

ACCEPTED = "a uint8 Box in [0, 255] of shape (H, W, C) (or (C, H, W) where the channels are the smallest axis)"


@dataclass(frozen=True)
class ImageLayout:
    """The axes of an image observation space."""

    channels: int
    height: int
    width: int
    channels_last: bool

    @property
    def chw(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return self.channels, self.height, self.width

    @property
    def hwc(self) -> tuple[int, int, int]:
        """``(H, W, C)``."""
        return self.height, self.width, self.channels


def is_uint8_image(space: gym.Space) -> bool:
    """A 3-D uint8 ``Box`` whose bounds are exactly [0, 255] (SB3's test of an image)."""
    return (isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8
            and bool(np.all(space.low == 0)) and bool(np.all(space.high == 255)))


TO_UINT8 = "convert it to uint8 pixels in [0, 255] (a gymnasium ObservationWrapper)"


def read_image_space(space: gym.Space, who: str, *, floats: bool = False, channels_last: bool | None = None,
                     non_uint8_hint: str = TO_UINT8) -> ImageLayout:
    """The layout of an image observation space, or a ``ValueError`` that says how to get one.

    Args:
        space: the env's observation space.
        who: what takes the images, named in the error (e.g. ``"FERNNRecurrentPolicy"``).
        floats: also accept float images (any 3-D ``Box``), as SB3 does with ``normalize_images=False``.
        channels_last: ``True`` when the channels are the last axis whatever the sizes (the envs'
            ``(H, W, C)``); ``None`` decides as SB3 does (channels first when axis 0 is the smallest).
        non_uint8_hint: how to fix a 3-D Box that is not uint8 in [0, 255], appended to the error.

    Raises:
        ValueError: a Dict, a 2-D image, a vector, or a Box that is not uint8 in [0, 255] (nor a float image
            with ``floats``); the message names the wrapper or flag that fixes it.
    """
    if isinstance(space, gym.spaces.Dict):
        raise ValueError(f"{who} takes one image; these are Dict observations ({', '.join(space.spaces)}): choose "
                         "the image with --obs-key KEY (RLConfig(obs_key=...); in Python fernn.envs.wrappers.ImageKey"
                         "(env, KEY))")
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 2:
        raise ValueError(f"{who} takes images with a channel axis; got the 2-D {space}: add one with --add-channel "
                         "(RLConfig(add_channel=True); in Python fernn.envs.wrappers.with_channel_axis(env) or "
                         "gymnasium.wrappers.GrayscaleObservation(env, keep_dim=True))")
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
        raise ValueError(f"{who} takes image observations, {ACCEPTED}; got {space}. A state-based env gives "
                         "pixels with render_mode='rgb_array' and fernn.envs.trajectories.pixel_observations(env) "
                         "(CLI: --pixels --frame-size S)")
    if not (is_uint8_image(space) or floats):
        raise ValueError(f"{who} takes image observations, {ACCEPTED}; got {space}: {non_uint8_hint}")
    shape = tuple(int(s) for s in space.shape)
    if channels_last is None:
        channels_last = int(np.argmin(shape)) != 0
    if channels_last:
        return ImageLayout(shape[2], shape[0], shape[1], True)
    return ImageLayout(shape[0], shape[1], shape[2], False)


__all__ = ["ACCEPTED", "ImageLayout", "TO_UINT8", "is_uint8_image", "read_image_space"]
