"""The one reader of image observation spaces: it agrees with SB3 on what an image is and which axis holds
the channels, and every refusal names the fix."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first

from fernn.envs.image_spaces import read_image_space

SPACES = [
    gym.spaces.Box(0, 255, (32, 32, 3), np.uint8),
    gym.spaces.Box(0, 255, (3, 32, 32), np.uint8),
    gym.spaces.Box(0, 255, (84, 84, 1), np.uint8),
    gym.spaces.Box(0, 255, (210, 160, 3), np.uint8),
    gym.spaces.Box(0, 255, (2, 7, 9), np.uint8),
    gym.spaces.Box(0, 10, (7, 7, 3), np.uint8),
    gym.spaces.Box(0.0, 1.0, (32, 32, 3), np.float32),
    gym.spaces.Box(-1.0, 1.0, (4, 16, 16), np.float32),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: f"{s.dtype}{s.shape}[{s.low.min()},{s.high.max()}]")
@pytest.mark.parametrize("floats", [False, True])
def test_agrees_with_sb3_on_images_and_channel_axis(space, floats):
    sb3_says_image = is_image_space(space, check_channels=False, normalized_image=floats)
    if not sb3_says_image:
        with pytest.raises(ValueError, match="takes image observations"):
            read_image_space(space, "test", floats=floats)
        return
    layout = read_image_space(space, "test", floats=floats)
    assert layout.channels_last == (not is_image_space_channels_first(space))
    assert sorted(layout.chw) == sorted(space.shape)
    assert layout.hwc == (layout.height, layout.width, layout.channels)


def test_the_envs_layout_is_taken_when_known():
    tiny = gym.spaces.Box(0, 255, (2, 7, 9), np.uint8)  # smallest axis first, but an env's (H, W, C)
    assert read_image_space(tiny, "test", channels_last=True).hwc == (2, 7, 9)
    assert read_image_space(tiny, "test").chw == (2, 7, 9)


@pytest.mark.parametrize("space, fix", [
    (gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (7, 7, 3), np.uint8), "direction": gym.spaces.Discrete(4)}),
     "--obs-key"),
    (gym.spaces.Box(0, 255, (28, 28), np.uint8), "--add-channel"),
    (gym.spaces.Box(-1.0, 1.0, (4,), np.float32), "--pixels"),
    (gym.spaces.Discrete(3), "--pixels"),
    (gym.spaces.Box(0.0, 1.0, (8, 8, 3), np.float32), "uint8"),
])
def test_every_refusal_names_what_fixes_it(space, fix):
    with pytest.raises(ValueError, match=fix):
        read_image_space(space, "the reader")
