"""Inside a FERNN policy's memory on the occluded tracking task: which velocity channel carries the target, and
whether the readout's pooling over velocities keeps it (docs/rl.md, "Inside the memory").

    python experiments/rl_occlusion_inside.py --run runs/occlusion/fernn-self-motion-s0 [more runs] \
        [--velocity 2,-1] [--gap 6] [--episodes 5] [--out docs/rl_occlusion_inside.png]

Writes the figure (the share of the memory's energy at the target, per velocity channel and step, first run) and
a JSON of the same name with the summary over all the runs' steps and each run's own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

VELOCITY = [2, -1]  # an unseen target velocity, as in the occlusion report's GIFs
GAP = 6  # dark steps of every 10: longer than in training, as in the GIFs


def inspect(args: argparse.Namespace) -> None:
    """Which velocity channel of a FERNN policy's memory carries the target, in view and through gaps.

    At every step of seeded episodes with one target velocity, the state's energy inside the target's box (in
    window coordinates, where it is in view) is split over the velocity channels; reported: the share of the
    channel of the target's own velocity (self-motion policies: the state moves with the world, so a target of
    velocity ``v`` stays aligned in channel ``v``) and of the channel of its velocity relative to the window
    (``v`` minus the agent's move: what a policy without self-motion sees), in view and in gaps; 1 / V is chance.
    And whether the readout's pooling keeps the target: the correlation over the window between the target's true
    ink (drawn also while the window is dark) and the energy map of the state max-pooled over velocities (what
    the readout receives), of the two channels above and of the best-matching single channel. With several
    ``--run``: the summary over all their steps, each run's own, and the figure of the first.
    """
    from fernn.agents.plots import pyplot, save_figure
    from fernn.agents.runs import write_json

    measured = {run: inspect_run(run, args.velocity, args.gap, args.episodes) for run in args.run}
    every_row = [row for rows, _, _ in measured.values() for row in rows]
    velocities = next(iter(measured.values()))[2]
    summary = {"runs": [str(run) for run in args.run], "velocity": args.velocity, "gap": args.gap,
               "episodes": args.episodes, "chance": 1 / len(velocities), **summarise_inside(every_row, args.velocity),
               "per_run": {run.name: summarise_inside(rows, args.velocity) for run, (rows, _, _) in measured.items()}}
    write_json(args.json, summary)
    first = args.run[0]
    _, shares_of_episode, _ = measured[first]
    channel = {tuple(v): i for i, v in enumerate(velocities)}
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 4))
    times = [t for t, _, _ in shares_of_episode]
    image = np.stack([share for _, _, share in shares_of_episode], 1)
    axis.imshow(image, aspect="auto", cmap="viridis", extent=(times[0] - 0.5, times[-1] + 0.5, len(velocities) - 0.5,
                                                             -0.5))
    for t, gap, _ in shares_of_episode:
        if gap:
            axis.axvspan(t - 0.5, t + 0.5, color="white", alpha=0.15, linewidth=0)
    axis.axhline(channel[tuple(args.velocity)], color="red", linewidth=0.8, linestyle="--")
    axis.set_yticks(range(len(velocities)), [f"{vx},{vy}" for vx, vy in velocities], fontsize=6)
    axis.set(xlabel="step (light bands: window dark)", ylabel="velocity channel (vx, vy)",
             title=f"{first.name}: share of the memory's energy at the target, target velocity {tuple(args.velocity)}"
                   f" (red)")
    save_figure(figure, args.out)
    print(json.dumps({key: value for key, value in summary.items() if key != "per_run"}, indent=1))
    print(f"wrote {args.out} and {args.json}")


def inspect_run(run: Path, velocity: list[int], gap: int, episodes: int) -> tuple[list[dict], list, list]:
    """One FERNN run's measurements for :func:`inspect`: ``(rows, shares of episode 0, velocities)``; a row per
    step with the target (partly) inside the window."""
    import dataclasses

    import torch

    from fernn.agents.rl import EVAL_SEED, RLConfig, load_model, make_vec_env
    from fernn.agents.runs import RunDir

    config = RLConfig(**RunDir(run).read_config())
    if config.policy != "fernn":
        raise SystemExit(f"{run} is a {config.policy} run: inspect reads the velocity channels of a FERNN policy")
    config = dataclasses.replace(config, n_envs=1, vec_env="dummy", reward_scale=1.0, device="cpu").with_env_kwargs(
        {"target_velocities": [velocity], "gap_length": gap})
    envs = make_vec_env(config, seed=EVAL_SEED)
    model = load_model(config, run / "model.zip", envs)
    memory = model.policy.lstm_actor
    velocities = memory.rnn.flow.velocities.tolist()
    world_batch = envs.get_attr("unwrapped")[0].batch
    world, size = world_batch.scenes.world_size, memory.state_shape[-1]
    channel, reach = {tuple(v): i for i, v in enumerate(velocities)}, int(np.abs(velocities).max())
    rows: list[dict] = []
    shares_of_episode = []
    for episode in range(episodes):
        envs.seed(EVAL_SEED + episode)
        obs, state, start, info = envs.reset(), None, np.ones(1, bool), None
        for t in range(100):
            action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
            if info is not None:
                h = torch.as_tensor(state[0][0, 0]).reshape(memory.state_shape)  # (V, C, H, W) after taking o_t in
                tx, ty = info["target_position"]
                wx, wy = info["position"]
                cols = (tx - wx + np.arange(28)) % world
                lines = (ty - wy + np.arange(28)) % world
                cols, lines = cols[cols < size], lines[lines < size]
                if len(cols) and len(lines):
                    energy = h[:, :, lines][:, :, :, cols].pow(2).sum((1, 2, 3)).numpy()
                    share = energy / max(energy.sum(), 1e-12)
                    relative = tuple(int(np.clip(c, -reach, reach)) for c in np.subtract(velocity, info["action"]))
                    own, rel = channel[tuple(velocity)], channel[relative]
                    fits = target_correlations(h, world_batch.layers[0, 0].float())
                    rows.append({"t": t, "gap": bool(info["occluded"]), "own": float(share[own]),
                                 "relative": float(share[rel]), "argmax": velocities[int(share.argmax())],
                                 "fit_pooled": fits[0], "fit_own": fits[1 + own], "fit_relative": fits[1 + rel],
                                 "fit_best": max(fits[1:])})
                    if episode == 0:
                        shares_of_episode.append((t, bool(info["occluded"]), share))
            obs, _, done, infos = envs.step(action)
            info, start = infos[0], done
    envs.close()
    return rows, shares_of_episode, velocities


def summarise_inside(rows: list[dict], velocity: list[int]) -> dict:
    """Means over the in-view and the dark steps of :func:`inspect_run`'s rows."""
    summary = {}
    for name, gap in (("in_view", False), ("gap", True)):
        part = [r for r in rows if r["gap"] == gap]
        summary[name] = {"steps": len(part), "own_channel_share": float(np.mean([r["own"] for r in part] or [np.nan])),
                         "relative_channel_share": float(np.mean([r["relative"] for r in part] or [np.nan])),
                         "own_channel_is_argmax": float(np.mean([r["argmax"] == list(velocity) for r in part]
                                                                or [np.nan])),
                         "target_correlation": {key: float(np.nanmean([r[f"fit_{key}"] for r in part] or [np.nan]))
                                                for key in ("pooled", "own", "relative", "best")}}
    return summary


def target_correlations(state, ink) -> list[float]:
    """Pearson correlations over the window between ``ink`` ``(H, W)`` and the energy maps (summed over state
    channels) of ``state`` ``(V, C, H, W)`` max-pooled over velocities, then of each velocity channel:
    ``[pooled, channel 0, ..., channel V-1]`` (NaN where a map or the ink is constant)."""
    import torch

    from fernn.models import pool_velocities

    maps = torch.cat([pool_velocities(state[None]), state]).pow(2).sum(1).flatten(1)  # (1 + V, H W)
    maps = maps - maps.mean(1, keepdim=True)
    target = ink.flatten() - ink.mean()
    fits = maps @ target / (maps.norm(dim=1) * target.norm())
    return fits.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, nargs="+", default=[Path("runs/occlusion/fernn-self-motion-s0")],
                        help="one or more FERNN runs of experiments/rl_occlusion.py (the summary is over all their steps)")
    parser.add_argument("--velocity", type=lambda s: [int(x) for x in s.split(",")], default=VELOCITY,
                        help="the target velocity vx,vy")
    parser.add_argument("--gap", type=int, default=GAP, help="dark steps of every 10")
    parser.add_argument("--episodes", type=int, default=5, help="seeded episodes per run")
    parser.add_argument("--out", type=Path, default=Path("docs/rl_occlusion_inside.png"))
    parser.add_argument("--json", type=Path, default=None,
                        help="the figures (default: experiments/results/<the --out file's stem>.json)")
    args = parser.parse_args()
    args.json = args.json or Path("experiments/results") / args.out.with_suffix(".json").name
    if not 0 <= args.gap < 10:
        parser.error(f"--gap must lie in [0, 9] (dark steps of every 10); got {args.gap}")
    missing = [str(run) for run in args.run if not (run / "model.zip").is_file()]
    if missing:
        parser.error(f"no finished run (model.zip) at {', '.join(missing)}: train it with experiments/rl_occlusion.py run")
    inspect(args)


if __name__ == "__main__":
    main()
