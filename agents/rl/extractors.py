"""Image encoders for SB3 policies: how an observation space is read as an image (as SB3 reads it), the readout
of a pooled FERNN state, and features extractors for small windows and frame stacks."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from fernn import FERNN, TranslationFlow
from fernn.flows import Flow
from fernn.agents.heads import ReadoutHead
from fernn.models import pool_velocities


ACCEPTED_IMAGES = ("a uint8 Box in [0, 255] of shape (H, W, C) or (C, H, W), as SB3's CnnPolicy takes, or a float "
                   "image Box with policy_kwargs=dict(normalize_images=False)")


def image_layout(observation_space: spaces.Space, who: str, *, normalized: bool = False) -> tuple[tuple[int, int, int], bool]:
    """``((C, H, W), channels_last)`` of an image observation space, decided as SB3 decides it.

    SB3's ``is_image_space`` says what is an image (uint8 in [0, 255]; with ``normalized`` any 3-D Box, the
    case of ``normalize_images=False``), and ``is_image_space_channels_first`` which axis holds the channels
    (the smallest). SB3 transposes uint8 channels-last images itself (``VecTransposeImage``); float images it
    leaves channels-last, so ``channels_last`` tells the extractor to transpose them.

    Raises:
        ValueError: naming ``who``, the space and what is accepted (with how to add a channel axis to a 2-D image).
    """
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first

    if isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 2:
        raise ValueError(f"{who} takes images with a channel axis; got the 2-D {observation_space}: add one with "
                         "--add-channel (RLConfig(add_channel=True); in Python fernn.envs.wrappers.with_channel_axis(env) "
                         "or gymnasium.wrappers.GrayscaleObservation(env, keep_dim=True))")
    if isinstance(observation_space, spaces.Dict):
        raise ValueError(f"{who} takes one image; these are Dict observations ({', '.join(observation_space.spaces)}): "
                         "choose the image with --obs-key KEY (RLConfig(obs_key=...); in Python "
                         "fernn.envs.wrappers.ImageKey(env, KEY))")
    if not is_image_space(observation_space, check_channels=False, normalized_image=normalized):
        hint = ""
        if isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 3:
            hint = ("; a float image needs policy_kwargs=dict(normalize_images=False) (and for a features extractor "
                    "features_extractor_kwargs=dict(normalized_image=True))")
        elif isinstance(observation_space, spaces.Box):
            hint = "; a state-based env gives pixels with render_mode='rgb_array' and AddRenderObservation"
        raise ValueError(f"{who} takes image observations: {ACCEPTED_IMAGES}; got {observation_space}{hint}")
    shape = tuple(int(s) for s in observation_space.shape)
    if is_image_space_channels_first(observation_space):
        return shape, False
    return (shape[2], shape[0], shape[1]), True


def channels_first(observations: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``(N, H, W, C)`` -> ``(N, C, H, W)`` when ``channels_last``, else unchanged."""
    return observations.permute(0, 3, 1, 2) if channels_last else observations


class ImagePassThrough(BaseFeaturesExtractor):
    """Flattened preprocessed channels-first images ``(N, C * H * W)``: the FERNN core does the vision."""

    def __init__(self, observation_space: spaces.Box, normalized_image: bool = False) -> None:
        shape, self.channels_last = image_layout(observation_space, "FERNNRecurrentPolicy", normalized=normalized_image)
        super().__init__(observation_space, int(np.prod(shape)))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return channels_first(observations, self.channels_last).flatten(1)


class SmallCNN(BaseFeaturesExtractor):
    """A CNN features extractor for small windows (SB3's ``NatureCNN`` needs >= 36 px): three 3x3
    convolutions (32, 64, 64 channels; strides 1, 2, 2), then a linear layer to ``features_dim``.
    ``normalized_image``: the observations are float images already in range (as ``NatureCNN``'s)."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 256, normalized_image: bool = False) -> None:
        super().__init__(observation_space, features_dim)
        shape, self.channels_last = image_layout(observation_space, "SmallCNN (the cnn-lstm and frame-stack "
                                                 "policies' encoder)", normalized=normalized_image)
        channels = shape[0]
        self.cnn = nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                                 nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, *shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(channels_first(observations, self.channels_last)))


class FERNNFrameStackExtractor(BaseFeaturesExtractor):
    """A FERNN over the frames of a ``VecFrameStack`` (channels-first ``(stack * C, H, W)``), run inside
    one forward pass; the last state, max-pooled over velocities, goes through :class:`ReadoutHead`.

    Args:
        observation_space: the stacked, transposed image space.
        frames: the ``n_stack`` of ``VecFrameStack``.
        fernn_hidden, vmax, flow: as :class:`FERNNRecurrentPolicy`.
        features_dim: output features.
        normalized_image: the observations are float images already in range.
    """

    def __init__(self, observation_space: spaces.Box, frames: int = 4, fernn_hidden: int = 16, vmax: int = 2,
                 flow: Flow | None = None, features_dim: int = 256, normalized_image: bool = False) -> None:
        super().__init__(observation_space, features_dim)
        (stacked, height, width), self.channels_last = image_layout(observation_space, "FERNNFrameStackExtractor",
                                                                    normalized=normalized_image)
        if stacked % frames:
            raise ValueError(f"the observation has {stacked} channels, not a multiple of frames={frames}")
        self.frames, self.channels = frames, stacked // frames
        self.rnn = FERNN(self.channels, fernn_hidden, flow or TranslationFlow(vmax))
        self.readout = ReadoutHead(self.rnn.state_channels, height, width, features_dim)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        observations = channels_first(observations, self.channels_last)
        frames = observations.reshape(observations.shape[0], self.frames, self.channels, *observations.shape[-2:])
        _, last = self.rnn(frames, return_state=True)
        return self.readout(pool_velocities(last))
