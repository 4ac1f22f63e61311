"""FloWM in 3-D against its ablations and an RSSM, and planning to the red block: the measurements of
docs/world_model_3d.md.

    python experiments/world_model_3d.py collect [--data runs/blocks] [--episodes 200] [--steps 200]
    python experiments/world_model_3d.py run     [--data runs/blocks] [--out runs/blocks] [--seeds 0,1] [--jobs 2]
    python experiments/world_model_3d.py plan    [--out runs/blocks] [--episodes 8] [--score red-ink]
    python experiments/world_model_3d.py report  [--out runs/blocks] [--docs docs]

``collect`` writes the training episodes (the dynamic block world, FloWM's biased walk, ground truth recorded) and,
for the planner's reward head, episodes of the find-red task (same walk, rewards recorded). ``run`` trains every
model x seed on the same data with the same loss and budget (``fernn.agents.train``; resumable: finished runs are
skipped, killed ones resume from their checkpoint), ``--jobs`` at a time with one thread each. ``plan`` plans to
the red block with each model's seed 0 (``fernn.agents.planning_eval.plan_run``: CEM with 16 candidates, horizon
6, one iteration, scoring the red block's share of the imagined views, ``red-ink``; or ``--score reward-head``, a
head fitted to the find-red episodes' rewards) and with a random policy. ``report`` writes the table, the error-per-step figure, GIFs and the JSON behind them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

MODELS = {"fernn-3d": "FloWM-3D (5 velocity channels)", "fernn-3d-no-velocities": "no velocity channels",
          "fernn-3d-no-self-motion": "no self-motion", "rssm": "RSSM (DreamerV3-style)"}
#: the run's training settings: the same for every model (CPU scale; the paper: 50 + 90 at 128 px)
TRAINING = {"context": 12, "predict": 12, "batch_size": 8, "hidden": 16, "lr": 2e-3, "teacher_forcing": 0.125,
            "eval_sequences": 32, "val_batches": 2, "checkpoint_every": 50, "log_every": 10}


def collect(args: argparse.Namespace) -> None:
    import gymnasium as gym

    import fernn.envs  # noqa: F401
    from fernn.envs import collect_episodes

    args.data.mkdir(parents=True, exist_ok=True)
    for name, env_id, count in (("train", "DynamicBlockWorld-v0", args.episodes),
                                ("findred", "DynamicBlockWorldFindRed-v0", args.reward_episodes)):
        path = args.data / f"blocks_{name}.npz"
        if path.is_file():
            continue
        vector = gym.make_vec(env_id, num_envs=16, vectorization_mode="vector_entry_point")
        data = collect_episodes(vector, count, max_steps=args.steps, policy="biased-walk", seed=args.seed)
        data.save(path)
        print(f"wrote {path}: {len(data.lengths)} episodes of {args.steps} steps")


def train_one(model: str, seed: int, settings: dict) -> dict:
    """One run (trained, or resumed, or skipped when finished)."""
    import torch

    torch.set_num_threads(1)
    from fernn.agents import TrainConfig, train
    from fernn.agents.runs import RunDir

    name = f"{model}-s{seed}"
    run = RunDir(Path(settings["out"]) / name)
    if (run.path / "results.json").is_file():
        return {"run": name, "skipped": True}
    config = TrainConfig(data=settings["data"], model=model, seed=seed, epochs=settings["epochs"],
                         steps_per_epoch=settings["steps_per_epoch"], out=settings["out"], name=name, device="cpu",
                         **TRAINING)
    train(config, resume=run.exists())
    return {"run": name, "skipped": False}


def run(args: argparse.Namespace) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    settings = {"data": str(args.data / "blocks_train.npz"), "out": str(args.out), "epochs": args.epochs,
                "steps_per_epoch": args.steps_per_epoch}
    tasks = [(model, seed) for seed in args.seeds for model in args.models]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(train_one, model, seed, settings): (model, seed) for model, seed in tasks}
        for future in as_completed(futures):
            done = future.result()
            print(f"{done['run']}: {'already trained' if done['skipped'] else 'trained and evaluated'}", flush=True)


def plan(args: argparse.Namespace) -> None:
    import torch

    from fernn.agents.planning_eval import plan_run

    torch.set_num_threads(args.threads)
    for model in args.models:
        world_model = args.out / f"{model}-s0"
        folder = world_model / "plan-find-red"
        if not (world_model / "results.json").is_file() or (folder / "results.json").is_file():
            continue
        reward = {"reward_data": args.data / "blocks_findred.npz"} if args.score == "reward-head" else {}
        plan_run("dynamic-block-world-find-red", world_model, score=args.score, **reward, horizon=args.horizon,
                 candidates=args.candidates, iterations=args.iterations, elites=min(4, args.candidates),
                 episodes=args.episodes,
                 parallel=args.episodes, device="cpu", out=folder, gif=True)
        print(f"{model}: planned", flush=True)
    random_path = args.out / "random-find-red.json"
    if not random_path.is_file():
        from fernn.agents.runs import write_json

        write_json(random_path, random_policy(args.episodes))


def random_policy(episodes: int, seed: int = 50_000) -> dict:
    """A uniformly random policy's returns and final distances on the find-red task (the planners' seeds)."""
    import gymnasium as gym

    import fernn.envs  # noqa: F401

    env = gym.make("DynamicBlockWorldFindRed-v0")
    env.action_space.seed(0)
    returns, distances = [], []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, done, info = 0.0, False, {}
        while not done:
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            total, done = total + reward, terminated or truncated
        returns.append(total)
        distances.append(float(info["red_distance"]))
    return {"returns": returns, "final_info": {"red_distance": distances}}


def finished_runs(root: Path, model: str) -> list[Path]:
    """The run directories of ``model``'s finished seeds (those with a ``results.json``), by seed name."""
    return [path.parent for path in sorted(root.glob(f"{model}-s*/results.json"))
            if path.parent.name.rsplit("-s", 1)[0] == model]


def read_runs(root: Path) -> dict[str, list[dict]]:
    """``{model: [results.json of each seed]}``."""
    found: dict[str, list[dict]] = {}
    for model in MODELS:
        for run in finished_runs(root, model):
            found.setdefault(model, []).append(json.loads((run / "results.json").read_text()))
    return found


def run_costs(root: Path, model: str) -> tuple[list[int], list[float]]:
    """Parameters and training seconds of every finished seed of ``model`` (from its checkpoint and metrics.csv)."""
    from fernn.agents.runs import RunDir

    parameters, seconds = [], []
    for path in finished_runs(root, model):
        run = RunDir(path)
        parameters.append(sum(value.numel() for value in run.load_checkpoint("best.pt")["model"].values()))
        seconds.append(float(run.read_metrics()[-1]["seconds"]))
    return parameters, seconds


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def report(args: argparse.Namespace) -> None:
    from fernn.agents.plots import pyplot, save_figure
    from fernn.agents.runs import write_json

    runs = read_runs(args.out)
    if not runs:
        raise SystemExit(f"no finished runs under {args.out}; run first")
    args.docs.mkdir(parents=True, exist_ok=True)
    summary, rows = {"training": TRAINING, "models": {}}, []
    columns = ["MSE @1", "MSE @12 (trained)", "MSE @48", "PSNR @12", "SSIM @12", "PSNR @48", "SSIM @48",
               "MSE in view", "MSE out of view", "parameters", "train s"]
    for model, results in runs.items():
        tests = [r["test"] for r in results]
        lengths = [next(iter(r["length_generalization"].values())) for r in results if r.get("length_generalization")]
        long_steps = [length["mse_per_step"] for length in lengths]
        entry = {"label": MODELS[model], "seeds": len(results),
                 "mse_per_step": np.mean([s for s in long_steps], 0).tolist() if long_steps else None,
                 "mse_per_step_std": np.std(long_steps, 0).tolist() if long_steps else None,
                 "test": {key: [t[key] for t in tests] for key in ("mse", "psnr", "ssim", "mse_in_view",
                                                                   "mse_out_of_view", "mse_background")
                          if key in tests[0]},
                 "long": {key: [length[key] for length in lengths] for key in ("mse", "psnr", "ssim")} if lengths else {}}
        summary["models"][model] = entry
        parameters, seconds = run_costs(args.out, model)
        cell = lambda values: _mean_std([v for v in values if v is not None]) if values else "-"  # noqa: E731
        first = [steps[0] for steps in long_steps]
        trained = [np.mean(steps[:TRAINING["predict"]]) for steps in long_steps]
        rows.append([MODELS[model], cell(first), cell(trained), cell(entry["long"].get("mse", [])),
                     cell(entry["test"]["psnr"]), cell(entry["test"]["ssim"]), cell(entry["long"].get("psnr", [])),
                     cell(entry["long"].get("ssim", [])), cell(entry["test"].get("mse_in_view", [])),
                     cell(entry["test"].get("mse_out_of_view", [])), f"{parameters[0]:,}" if parameters else "-",
                     f"{np.mean(seconds):,.0f}" if seconds else "-"])
        entry["parameters"], entry["training_seconds"] = parameters, seconds
    table = "| model | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns) + "\n"
    table += "".join("| " + " | ".join(row) + " |\n" for row in rows)
    (args.docs / "world_model_3d_table.md").write_text(table)
    print(table)
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for model, entry in summary["models"].items():
        if entry["mse_per_step"]:
            steps = np.arange(1, len(entry["mse_per_step"]) + 1)
            mean, std = np.array(entry["mse_per_step"]), np.array(entry["mse_per_step_std"])
            axis.plot(steps, mean, label=entry["label"])
            axis.fill_between(steps, mean - std, mean + std, alpha=0.2)
    axis.axvline(TRAINING["predict"], color="grey", linestyle="--", linewidth=1, label="trained horizon")
    axis.set(xlabel="predicted view (after 12 observed)", ylabel="MSE", title="Free-running error per step")
    axis.legend(fontsize=8)
    save_figure(figure, args.docs / "world_model_3d_error.png")
    for model in runs:
        gif = args.out / f"{model}-s0" / "rollout.gif"
        if gif.is_file():
            shutil.copyfile(gif, args.docs / f"world_model_3d_{model}.gif")
    planning, plan_rows = {}, []
    for model in MODELS:
        for folder, score in (("plan-find-red", "red-ink"), ("plan-find-red-reward-head", "reward head")):
            path = args.out / f"{model}-s0" / folder / "results.json"
            if path.is_file():
                planning[f"{model} ({score})"] = json.loads(path.read_text())
                plan_rows.append((f"{MODELS[model]}, CEM, {score}", f"{model} ({score})"))
    if (args.out / "random-find-red.json").is_file():
        planning["random"] = json.loads((args.out / "random-find-red.json").read_text())
        plan_rows.append(("random policy", "random"))
    summary["planning"] = {name: {"final_red_distance": result["final_info"]["red_distance"],
                                  "returns": result["returns"],
                                  "decisions_per_second": result.get("decisions_per_second")}
                           for name, result in planning.items()}
    if plan_rows:
        lines = ["| planner | final distance to the red block (cells) | return | decisions/s |", "|---|---|---|---|"]
        for label, name in plan_rows:
            entry = summary["planning"][name]
            distance, returns = entry["final_red_distance"], entry["returns"]
            speed = entry["decisions_per_second"]
            lines.append(f"| {label} | {np.mean(distance):.2f} ± {np.std(distance):.2f} | {np.mean(returns):.2f} ± "
                         f"{np.std(returns):.2f} | {f'{speed:.2f}' if speed else '-'} |")
        (args.docs / "world_model_3d_planning.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
    write_json(args.results / "world_model_3d.json", summary)
    print(f"wrote {args.docs}/world_model_3d_table.md, world_model_3d_error.png, the GIFs and "
          f"{args.results}/world_model_3d.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = {name: commands.add_parser(name) for name in ("collect", "run", "plan", "report")}
    for command in sub.values():
        command.add_argument("--data", type=Path, default=Path("runs/blocks"))
        command.add_argument("--out", type=Path, default=Path("runs/blocks"))
        command.add_argument("--models", type=lambda s: s.split(","), default=list(MODELS))
    sub["collect"].add_argument("--episodes", type=int, default=200)
    sub["collect"].add_argument("--reward-episodes", type=int, default=40)
    sub["collect"].add_argument("--steps", type=int, default=200)
    sub["collect"].add_argument("--seed", type=int, default=0)
    sub["run"].add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    sub["run"].add_argument("--jobs", type=int, default=2)
    sub["run"].add_argument("--epochs", type=int, default=10)
    sub["run"].add_argument("--steps-per-epoch", type=int, default=80)
    sub["plan"].add_argument("--episodes", type=int, default=8)
    sub["plan"].add_argument("--horizon", type=int, default=6)
    sub["plan"].add_argument("--candidates", type=int, default=16)
    sub["plan"].add_argument("--iterations", type=int, default=1)
    sub["plan"].add_argument("--score", choices=("red-ink", "reward-head"), default="red-ink")
    sub["plan"].add_argument("--threads", type=int, default=2)
    sub["report"].add_argument("--docs", type=Path, default=Path("docs"))
    sub["report"].add_argument("--results", type=Path, default=Path("experiments/results"))
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    {"collect": collect, "run": run, "plan": plan, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
