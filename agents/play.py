"""``fernn-rl play``: drive an env with the keyboard in a pygame window.

The keys come from the env's ``get_keys_to_action()`` (so ``gymnasium.utils.play.play`` works on the
same envs); pressing nothing sends the "stay" action. Escape or closing the window quits.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

import fernn.envs  # noqa: F401  (registers the ids)
from fernn.envs.rendering import HumanViewer


def play(env_id: str, *, fps: int = 8, seed: int | None = None, max_steps: int | None = None,
         report: Callable[[int, float], None] | None = None, **env_kwargs) -> list[float]:
    """Play ``env_id`` until Escape, a closed window or ``max_steps`` steps; return the episode returns.

    Args:
        env_id: a registered id whose env has ``get_keys_to_action()``.
        fps: steps per second.
        seed: seed of the first episode.
        max_steps: stop after this many steps (for scripted use and tests).
        report: called with ``(episode, return)`` when an episode ends.
    """
    from fernn._extras import require

    pygame = require("pygame", "play", "keyboard play")
    env = gym.make(env_id, render_mode="rgb_array", **env_kwargs)
    if not hasattr(env.unwrapped, "get_keys_to_action"):
        raise ValueError(f"{env_id} has no keyboard mapping (get_keys_to_action); playable: the MNIST World ids "
                         "(MNISTWorld-v0, MNISTWorldTrack-v0, ...) and the block world ids (DynamicBlockWorld-v0, ...)")
    mapping = env.unwrapped.get_keys_to_action()
    relevant = sorted({key for keys in mapping for key in keys})
    viewer = HumanViewer(f"fernn-rl play {env_id}", fps)
    env.reset(seed=seed)
    returns, total, steps = [], 0.0, 0
    try:
        while max_steps is None or steps < max_steps:
            viewer.show(env.render())
            if any(event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE)
                   for event in pygame.event.get()):
                break
            pressed = pygame.key.get_pressed()
            action = mapping.get(tuple(key for key in relevant if pressed[key]), mapping[()])
            _, reward, terminated, truncated, _ = env.step(np.int64(action))
            total, steps = total + float(reward), steps + 1
            if terminated or truncated:
                returns.append(total)
                if report is not None:
                    report(len(returns), total)
                total = 0.0
                env.reset()
    finally:
        viewer.close()
        env.close()
    return returns
