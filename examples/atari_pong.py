"""Pong, an environment this package did not write, through the trajectory toolkit: collect random-policy
episodes of ``ALE/Pong-v5`` (grayscale, the playfield cropped to 160 x 160 and area-downsampled 4x to 40 x 40,
frame skip 4, so the ball moves about one pixel per step), train G-RNN and FERNN-V2 next-frame predictors on
them with the same budget, and report one-step and free-running rollout MSE, the ball's measured velocities and
a rollout GIF per model.

    pip install 'fernn-rl[atari]'
    python examples/atari_pong.py --out runs/pong      # the figures of docs/atari.md
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np

from fernn.agents import TrainConfig, train
from fernn.envs import collect_episodes

TOP, SIZE, FACTOR = 34, 160, 4  # the playfield: rows 34..193, all 160 columns; 4x4 area downsampling
#: the ball's position in the Atari's RAM (x, y), in playfield pixels
BALL_X, BALL_Y = 49, 54


def make_pong(frameskip: int = 4) -> gym.Env:
    """``ALE/Pong-v5`` with deterministic frame skips, observed as uint8 ``(40, 40, 1)`` frames."""
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make("ALE/Pong-v5", frameskip=frameskip, repeat_action_probability=0.0, obs_type="grayscale")
    side = SIZE // FACTOR
    space = gym.spaces.Box(0, 255, (side, side, 1), np.uint8)

    def downsample(frame: np.ndarray) -> np.ndarray:
        field = frame[TOP:TOP + SIZE].astype(np.float32)
        return field.reshape(side, FACTOR, side, FACTOR).mean((1, 3)).round().astype(np.uint8)[..., None]

    return gym.wrappers.TransformObservation(env, downsample, space)


def ball_velocities(env: gym.Env, steps: int, seed: int) -> dict[str, int]:
    """How far the ball moves per step in downsampled pixels (from the RAM), as a histogram ``"(dx, dy)": count``."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    ram = env.unwrapped.ale.getRAM
    positions = []
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        memory = ram()
        positions.append((int(memory[BALL_X]), int(memory[BALL_Y])))
        if terminated or truncated:
            env.reset()
            positions.append(None)
    counts: dict[str, int] = {}
    for before, after in zip(positions, positions[1:]):
        if before is None or after is None or 0 in before or 0 in after:  # no ball on screen
            continue
        move = tuple(round((a - b) / FACTOR) for a, b in zip(after, before))
        if max(abs(m) for m in move) <= 10:  # not a serve (the ball reappears elsewhere)
            counts[str(move)] = counts.get(str(move), 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/pong", help="Folder of the trajectory file, the runs and results.json.")
    parser.add_argument("--episodes", type=int, default=48, help="Random-policy episodes to collect.")
    parser.add_argument("--steps", type=int, default=30, help="Steps per episode (the rest of a game is cut).")
    parser.add_argument("--train-steps", type=int, default=300, help="Adam steps per model.")
    parser.add_argument("--hidden", type=int, default=12, help="Hidden channels per velocity channel.")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--context", type=int, default=5)
    parser.add_argument("--predict", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = make_pong()
    velocities = ball_velocities(make_pong(), 400, args.seed)
    data = collect_episodes(env, args.episodes, max_steps=args.steps, seed=args.seed)
    data.save(out / "pong.npz")
    summary = {"ball_velocities_px_per_step": velocities, "episodes": args.episodes, "steps": args.steps,
               "models": {}}
    for model in ("grnn", "fernn"):
        config = TrainConfig(data=str(out / "pong.npz"), model=model, vmax=2, hidden=args.hidden,
                             context=args.context, predict=args.predict, epochs=1, steps_per_epoch=args.train_steps,
                             batch_size=args.batch_size, lr=2e-3, decoder_layers=2, teacher_forcing=1.0,
                             teacher_forcing_end=0.0, eval_sequences=32, val_batches=2, seed=args.seed,
                             out=str(out), name=model, device="cpu")
        result = train(config, overwrite=True)
        test = result.results["test"]
        summary["models"][model] = {"rollout_mse": test["mse"], "one_step_mse": test["one_step_mse"],
                                    "rollout_mse_per_step": test["mse_per_step"],
                                    "parameters": sum(p.numel() for p in _model_parameters(result))}
        gif = result.run_dir.path / "rollout_0.gif"
        if gif.is_file():
            shutil.copyfile(gif, out / f"pong_rollout_{model}.gif")
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"ball velocities (dx, dy) per step, downsampled px: {velocities}")
    for model, figures in summary["models"].items():
        print(f"{model}: rollout MSE {figures['rollout_mse']:.5f}, one-step MSE {figures['one_step_mse']:.5f}")
    return summary


def _model_parameters(result):
    from fernn.agents.runs import load_checkpoint

    return load_checkpoint(result.run_dir.checkpoints / "last.pt")["model"].values()


if __name__ == "__main__":
    main()
