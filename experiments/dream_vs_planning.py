"""A policy learned in FloWM's imagination against the CEM planner with the same world model, and against the RL
policies: the measurements of the imagination section of docs/planning.md.

    python experiments/dream_vs_planning.py models [--out runs/dream] [--seeds 0,1]
    python experiments/dream_vs_planning.py dream  [--out runs/dream] [--seeds 0,1] [--steps 2000] [--lr 3e-4]
    python experiments/dream_vs_planning.py plan   [--out runs/dream] [--seeds 0,1]
    python experiments/dream_vs_planning.py report [--out runs/dream] [--rl experiments/results/rl_occlusion.json] [--docs docs]

``models`` collects 300 random episodes of MNISTWorldTrack-v0 (target velocities |v| <= 1) and trains FloWM on
them, one world model per seed (the settings of experiments/planning_world_models.sh, with the velocity grid of
radius 2 so that every move of the env is a velocity channel). ``dream`` learns a policy in each world model's
imagination (``fernn.agents.dream``); ``plan`` plans with the same world models (``plan_run``). Both are evaluated
on the same seeded episodes (seen and unseen target velocities, unseen through gaps of 4). Every step is
resumable: what is finished is skipped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

WORLD_MODEL = {"model": "fernn", "vmax": 2, "world_size": 50, "hidden": 8, "decoder_layers": 1, "context": 10,
               "predict": 10, "epochs": 5, "steps_per_epoch": 60, "batch_size": 8, "lr": 2e-3, "teacher_forcing": 1.0,
               "teacher_forcing_end": 0.0, "eval_sequences": 16}
SETTINGS = ("seen", "unseen", "unseen-gap4")


def models(args: argparse.Namespace) -> None:
    from fernn.agents import TrainConfig, train
    from fernn.envs import collect_episodes
    from fernn.envs.tracking_studies import target_velocities

    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "track_random.npz"
    if not data.is_file():
        seen = {"target_velocities": target_velocities("seen")}
        collect_episodes("mnist-world-track", 300, seed=0, env_kwargs=seen).save(data)
    for seed in args.seeds:
        name = f"wm-fernn-s{seed}"
        if not (args.out / name / "results.json").is_file():
            train(TrainConfig(data=str(data), seed=seed, device="cpu", out=str(args.out), name=name, **WORLD_MODEL),
                  resume=(args.out / name / "run.json").is_file())
        print(f"{name}: trained", flush=True)


def dream(args: argparse.Namespace) -> None:
    from fernn.agents.dream import DreamConfig, train_dream
    from fernn.envs.tracking_studies import target_velocities

    for seed in args.seeds:
        name = f"dream-s{seed}"
        if (args.out / name / "results.json").is_file():
            continue
        config = DreamConfig(world_model=str(args.out / f"wm-fernn-s{seed}"), env="mnist-world-track",
                             env_kwargs={"target_velocities": target_velocities("seen")}, steps=args.steps,
                             lr=args.lr, seed=seed,
                             device="cpu", out=str(args.out), name=name)
        train_dream(config, resume=(args.out / name / "run.json").is_file())
        print(f"{name}: learned and evaluated", flush=True)


def setting_kwargs(setting: str) -> dict:
    from fernn.envs.tracking_studies import study_kwargs

    return study_kwargs(setting)


def plan(args: argparse.Namespace) -> None:
    from fernn.agents.planning_eval import plan_run

    for seed in args.seeds:
        for setting in SETTINGS:
            out = args.out / f"wm-fernn-s{seed}" / f"plan-{setting}"
            if (out / "results.json").is_file():
                continue
            plan_run("mnist-world-track", args.out / f"wm-fernn-s{seed}", env_kwargs=setting_kwargs(setting),
                     horizon=6, candidates=32, iterations=2, elites=4, episodes=20, parallel=10, device="cpu",
                     out=out, gif=False)
            print(f"wm-fernn-s{seed} {setting}: planned", flush=True)


def world_model_steps(dreams: list[dict]) -> int:
    """The environment steps of the random episodes the dreams' world model was trained on, read from its data file
    (the world model of the first dream; every dream here shares the recipe)."""
    from fernn.envs import TrajectoryDataset

    if not dreams:
        return 0
    world = Path(dreams[0]["config"]["world_model"])  # recorded absolute
    data = json.loads((world / "config.json").read_text())["data"]
    return int(TrajectoryDataset.load(data, window=1).lengths.sum())


def report(args: argparse.Namespace) -> None:
    from fernn.agents.runs import write_json

    rows, summary = [], {"dream": {}, "planner": {}, "rl": {}}
    dreams = [json.loads(p.read_text()) for p in sorted(args.out.glob("dream-s*/results.json"))]
    plans = {setting: [json.loads(p.read_text()) for p in sorted(args.out.glob(f"wm-fernn-s*/plan-{setting}/results.json"))]
             for setting in SETTINGS}

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.1f} ± {np.std(values):.1f} ({len(values)})" if values else "-"

    data_steps = world_model_steps(dreams)
    if dreams:
        returns = {s: [d["final"][s]["mean_return"] for d in dreams] for s in SETTINGS}
        speed = [np.mean([d["final"][s]["decisions_per_second"] for s in SETTINGS]) for d in dreams]
        summary["dream"] = {"returns": returns, "decisions_per_second": speed, "updates": dreams[0]["updates"],
                            "training_seconds": [d["training_seconds"] for d in dreams]}
        rows.append(["policy learned in imagination (FloWM)", *[cell(returns[s]) for s in SETTINGS],
                     f"{np.mean(speed):,.0f}", f"{data_steps:,} (the world model's random episodes)"])
    if all(plans.values()):
        returns = {s: [p["mean_return"] for p in plans[s]] for s in SETTINGS}
        speed = [p["decisions_per_second"] for s in SETTINGS for p in plans[s]]
        summary["planner"] = {"returns": returns, "decisions_per_second": speed}
        rows.append(["CEM planner (FloWM), K = 32, H = 6, 2 iterations", *[cell(returns[s]) for s in SETTINGS],
                     f"{np.mean(speed):.1f}", f"{data_steps:,} (the same)"])
    elif args.planning.is_file():  # the planner of docs/planning.md: world models of the same recipe, own seeds
        flowm = json.loads(args.planning.read_text())["models"]["fernn"]
        returns, speed = {s: flowm["returns"][s] for s in SETTINGS}, [flowm["decisions_per_second"]]
        summary["planner"] = {"returns": returns, "decisions_per_second": speed, "source": str(args.planning)}
        rows.append(["CEM planner (FloWM of the same recipe, planning.md), K = 16, H = 3",
                     *[cell(returns[s]) for s in SETTINGS], f"{np.mean(speed):.1f}", f"{data_steps:,} (the same)"])
    if args.rl.is_file():
        grid = json.loads(args.rl.read_text())
        cells = {"seen": "seen/gap=0", "unseen": "unseen/gap=0", "unseen-gap4": "unseen/gap=4"}
        for name, policy in grid["policies"].items():
            returns = {s: policy["cells"][cells[s]]["per_seed"] for s in SETTINGS if cells[s] in policy["cells"]}
            summary["rl"][name] = returns
            rows.append([f"RL: {policy['label']}", *[cell(returns.get(s, [])) for s in SETTINGS], "-",
                         f"{policy['timesteps']:,} (on the occluded env)"])
    header = "| method | seen | unseen | unseen, gaps of 4 | decisions/s | environment steps |\n|---|---|---|---|---|---|\n"
    table = header + "".join("| " + " | ".join(row) + " |\n" for row in rows)
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.docs / "dream_table.md").write_text(table)
    write_json(args.results / "dream_vs_planning.json", summary)
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = {name: commands.add_parser(name) for name in ("models", "dream", "plan", "report")}
    for command in sub.values():
        command.add_argument("--out", type=Path, default=Path("runs/dream"))
        command.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    sub["dream"].add_argument("--steps", type=int, default=2000)
    sub["dream"].add_argument("--lr", type=float, default=3e-4)
    sub["report"].add_argument("--rl", type=Path, default=Path("experiments/results/rl_occlusion.json"))
    sub["report"].add_argument("--planning", type=Path, default=Path("experiments/results/planning.json"))
    sub["report"].add_argument("--docs", type=Path, default=Path("docs"))
    sub["report"].add_argument("--results", type=Path, default=Path("experiments/results"))
    args = parser.parse_args()
    {"models": models, "dream": dream, "plan": plan, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
