"""The README's environment example: a Gymnasium loop, a native vector env and a training batch."""

import gymnasium as gym
import numpy as np

import fernn.envs  # registers the ids (or use gym.make("fernn.envs:MNISTWorldTrack-v0"))

env = gym.make("MNISTWorldTrack-v0", render_mode="rgb_array")
obs, info = env.reset(seed=0)                        # obs: uint8 (32, 32, 2), the window + the target
for _ in range(20):
    obs, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
frame = env.render()                                 # the whole world with the window drawn on it

vector = gym.make_vec("FlowingMNIST-v0", num_envs=8, vectorization_mode="vector_entry_point")
obs, _ = vector.reset(seed=0)                        # (8, 28, 28, 1), 8 scenes rendered in one batched op
obs, rewards, *_ = vector.step(np.zeros((8, 28, 28, 1), np.float32))   # predict blank frames: reward -MSE

batch = fernn.envs.FlowingMNISTDataset(velocities=1).sample_batch(16)  # training data, no env stepping
print(batch["frames"].shape, batch["velocities"].shape)                # (16, 20, 1, 28, 28), (16, 2, 2)
