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
from fernn.envs.image_spaces import read_image_space
from fernn.models import pool_velocities


#: how SB3 takes float images (appended to the error for a Box that is not uint8 in [0, 255])
FLOAT_IMAGES = ("a float image needs policy_kwargs=dict(normalize_images=False) (and for a features extractor "
                "features_extractor_kwargs=dict(normalized_image=True))")


def image_layout(observation_space: spaces.Space, who: str, *, normalized: bool = False) -> tuple[tuple[int, int, int], bool]:
    """``((C, H, W), channels_last)`` of an image observation space, decided as SB3 decides it
    (:func:`fernn.envs.image_spaces.read_image_space`; ``normalized``: float images are accepted).

    SB3 transposes uint8 channels-last images itself (``VecTransposeImage``); float images it leaves
    channels-last, so ``channels_last`` tells the extractor to transpose them.

    Raises:
        ValueError: naming ``who``, the space, what is accepted and the wrapper or flag that fixes it.
    """
    layout = read_image_space(observation_space, who, floats=normalized, non_uint8_hint=FLOAT_IMAGES)
    return layout.chw, layout.channels_last


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
