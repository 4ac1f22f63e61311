"""Render a picture of every environment into docs/ (the README's gallery), and a GIF of the block world's
scripted data policy.

    python experiments/render_envs.py --out docs

KTH is drawn from the synthetic stand-in (``fernn.envs.kth_synthetic``) unless ``--kth-data-dir``
points at the real data.
"""

import argparse
import tempfile
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import fernn.envs  # noqa: E402,F401
from fernn.envs.kth_synthetic import make_synthetic_kth  # noqa: E402


def render(env_id: str, steps: int, **kwargs):
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    env.reset(seed=1)
    env.action_space.seed(1)
    for _ in range(steps):
        action = env.unwrapped.oracle_action() if env_id == "MNISTWorldTrack-v0" else env.action_space.sample()
        env.step(action)
    return env.render()


def block_world_walk(steps: int, seed: int = 3) -> list:
    """Frames of the biased walk (FloWM's data policy) in the dynamic block world: the view beside the map."""
    env = gym.make_vec("DynamicBlockWorld-v0", num_envs=1, vectorization_mode="vector_entry_point",
                       render_mode="rgb_array")
    _, info = env.reset(seed=seed)
    policy = env.unwrapped.scripted_policy("biased-walk", seed=seed)
    frames, starts = [env.render()[0]], [True]
    for _ in range(steps):
        _, _, _, _, info = env.step(policy(info, starts))
        frames.append(env.render()[0])
        starts = [False]
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--kth-data-dir", type=Path, default=None)
    parser.add_argument("--gif-steps", type=int, default=80, help="steps of the block world's walk in the GIF")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        kth = args.kth_data_dir or make_synthetic_kth(scratch, persons=(1,), frames=72)
        pictures = {
            "FlowingMNIST-v0": render("FlowingMNIST-v0", 3),
            "RotatingMNIST-v0": render("RotatingMNIST-v0", 3),
            "KTHCamera-v0": render("KTHCamera-v0", 5, data_dir=str(kth), velocities=[(1, 1)]),
            "MNISTWorld-v0": render("MNISTWorld-v0", 4),
            "MNISTWorldTrack-v0": render("MNISTWorldTrack-v0", 12),
            "DynamicBlockWorld-v0": block_world_walk(25)[-1],
        }
    for env_id, picture in pictures.items():
        path = args.out / f"env_{env_id.split('-')[0]}.png"
        plt.imsave(path, picture)
        print(f"wrote {path}")
    from PIL import Image

    frames = [Image.fromarray(frame).resize((frame.shape[1] // 2, frame.shape[0] // 2), Image.NEAREST)
              for frame in block_world_walk(args.gif_steps)]
    path = args.out / "env_DynamicBlockWorld_walk.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=150, loop=0)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
