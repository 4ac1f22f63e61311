"""Planning with the world models of experiments/planning_world_models.sh: the measurements of docs/planning.md.

    python experiments/planning_grid.py run [--world-models runs/planning] [--horizon 3 --candidates 16 --iterations 1]
    python experiments/planning_grid.py report [--world-models runs/planning] [--rl-runs runs/occlusion] [--docs docs] [--results experiments/results]

``run`` plans with every world model (FloWM and its ablations, every seed) in every setting -- seen and unseen
target velocities, with and without occlusion gaps -- over seeded episodes (``fernn-rl plan``), one setting's
``results.json`` per ``<world model>/plan-<setting>/``. Finished settings are skipped, so it resumes; world models
not trained yet are skipped too (run it again once they are).

``report`` writes the table (markdown, with the random and oracle returns and the RL policies of
``experiments/rl_occlusion.py`` on the same episodes), the imagined-vs-real error over the horizon
(``planning_error.png``) and ``planning.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

MODELS = {"fernn": "FloWM (velocity channels + self-motion)", "grnn": "no velocity channels (V = 1)",
          "fernn-no-self-motion": "no self-motion", "action-concat": "action-concat"}
ORDER = ["grnn", "action-concat", "fernn", "fernn-no-self-motion"]  # the cheap models (V = 1) first
SETTINGS = ("unseen-gap4", "unseen", "seen", "seen-gap4")  # cells of fernn.envs.tracking_studies, in run order


def env_kwargs(setting: str) -> dict:
    from fernn.envs.tracking_studies import study_kwargs

    return study_kwargs(setting)


def run(args: argparse.Namespace) -> None:
    import torch

    from fernn.agents.planning_eval import plan_run

    torch.set_num_threads(args.threads)
    for setting in args.settings:
        for seed in args.seeds:
            for model in sorted(args.models, key=ORDER.index):
                world_model = args.world_models / f"wm-{model}-s{seed}"
                out = world_model / f"plan-{setting}"
                if not (world_model / "results.json").is_file():
                    print(f"{world_model}: not trained yet, skipped")
                    continue
                if (out / "results.json").is_file():
                    continue
                plan_run("mnist-world-track", world_model, env_kwargs=env_kwargs(setting), horizon=args.horizon,
                         candidates=args.candidates, iterations=args.iterations, elites=min(4, args.candidates),
                         episodes=args.episodes, parallel=args.parallel, device="cpu", out=out,
                         gif=setting == "unseen-gap4" and seed == args.seeds[0])


def read(root: Path) -> dict[str, dict[str, list[dict]]]:
    """``{model: {setting: [results.json of each seed]}}``."""
    found: dict[str, dict[str, list[dict]]] = {}
    for model in MODELS:
        for world_model in sorted(root.glob(f"wm-{model}-s*")):
            if world_model.name.rsplit("-s", 1)[0] != f"wm-{model}":
                continue  # wm-fernn-s* must not collect wm-fernn-no-self-motion-s*
            for setting in SETTINGS:
                path = world_model / f"plan-{setting}" / "results.json"
                if path.is_file():
                    found.setdefault(model, {}).setdefault(setting, []).append(json.loads(path.read_text()))
    return found


def rl_cells(root: Path) -> dict[str, dict[str, list[float]]]:
    """The RL policies' returns on the same settings (experiments/rl_occlusion.py's grid.json; same episode seeds)."""
    from fernn.envs.tracking_studies import STUDY_CELLS

    cells: dict[str, dict[str, list[float]]] = {}
    for grid in sorted(root.glob("*-s*/grid.json")):
        policy = grid.parent.name.rsplit("-s", 1)[0]
        evaluations = json.loads(grid.read_text())
        for setting in SETTINGS:
            velocities, gap = STUDY_CELLS[setting]
            cell = evaluations.get(f"{velocities}/gap={gap}")
            if cell is not None:
                cells.setdefault(policy, {}).setdefault(setting, []).append(cell["mean_return"])
    return cells


def report(args: argparse.Namespace) -> None:
    from fernn.agents.plots import pyplot, save_figure
    from fernn.agents.rl import RLConfig, policy_bounds
    from fernn.agents.runs import write_json

    found = read(args.world_models)
    if not found:
        raise SystemExit(f"no planning results under {args.world_models}: run the grid first")
    settings = [s for s in ("seen", "unseen", "seen-gap4", "unseen-gap4")
                if any(s in by_setting for by_setting in found.values())]
    bounds = {s: policy_bounds(RLConfig(env="MNISTWorldTrack-v0", env_kwargs=env_kwargs(s)), args.bound_episodes)
              for s in settings}
    rl = rl_cells(args.rl_runs) if args.rl_runs.is_dir() else {}
    header = "| planner / policy | " + " | ".join(settings) + " | decisions/s | imagined MSE (h = 1 .. H) |"
    lines = [header, "|" + "---|" * (len(settings) + 3)]
    summary = {"settings": {s: env_kwargs(s) for s in settings}, "bounds": bounds, "models": {}, "rl": rl}
    for model, by_setting in found.items():
        cells, speeds, errors = [], [], []
        for setting in settings:
            runs = by_setting.get(setting, [])
            means = [r["mean_return"] for r in runs]
            cells.append(f"{np.mean(means):.1f} ± {np.std(means):.1f} ({len(runs)})" if runs else "")
            speeds += [r["decisions_per_second"] for r in runs]
            errors += [r["imagined_mse_per_step"] for r in runs if setting in ("seen", "unseen")]
        error = np.nanmean(np.array(errors), 0) if errors else []
        lines.append(f"| planner, {MODELS[model]} | " + " | ".join(cells) + f" | {np.mean(speeds):.1f} | "
                     + ", ".join(f"{e:.4f}" for e in error) + " |")
        summary["models"][model] = {"label": MODELS[model], "imagined_mse_per_step": list(map(float, error)),
                                    "decisions_per_second": float(np.mean(speeds)),
                                    "returns": {s: [r["mean_return"] for r in by_setting.get(s, [])] for s in settings},
                                    "settings": next(iter(by_setting.values()))[0]["settings"]}
    for policy, by_setting in rl.items():
        cells = [f"{np.mean(by_setting[s]):.1f} ± {np.std(by_setting[s]):.1f} ({len(by_setting[s])})"
                 if s in by_setting else "" for s in settings]
        lines.append(f"| RL: {policy} | " + " | ".join(cells) + " | | |")
    for bound in ("random", "oracle"):
        lines.append(f"| {bound} | " + " | ".join(f"{bounds[s][bound]['mean']:.1f}" for s in settings) + " | | |")
    table = "\n".join(lines)
    args.docs.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    write_json(args.results / "planning.json", summary)
    (args.docs / "planning_table.md").write_text(table + "\n")
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4))
    for model, entry in summary["models"].items():
        error = entry["imagined_mse_per_step"]
        axis.plot(range(1, len(error) + 1), error, marker="o", label=entry["label"])
    axis.set(xlabel="imagined step h", ylabel="MSE, imagined vs real window",
             title="World models in the planner's loop (seen + unseen, no gaps)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    save_figure(figure, args.docs / "planning_error.png")
    gifs = sorted(args.world_models.glob("wm-fernn-s*/plan-unseen-gap4/episode.gif"))
    if gifs:
        first_steps(gifs[0], args.docs / "planning_episode.gif", 50)
    print(table)
    print(f"wrote {args.results}/planning.json, {args.docs}/planning_table.md, planning_error.png"
          + (", planning_episode.gif" if gifs else ""))


def first_steps(source: Path, target: Path, steps: int) -> None:
    """The first ``steps`` frames of a GIF (a page-sized copy of an episode)."""
    from PIL import Image, ImageSequence

    from fernn.io import atomic_write

    with Image.open(source) as gif:
        frames = [frame.copy() for _, frame in zip(range(steps), ImageSequence.Iterator(gif))]
    atomic_write(target, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                                    duration=125, loop=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="plan with every world model in every setting (resumable)")
    go.add_argument("--world-models", type=Path, default=Path("runs/planning"))
    go.add_argument("--models", type=lambda s: s.split(","), default=list(MODELS))
    go.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    go.add_argument("--settings", type=lambda s: s.split(","), default=list(SETTINGS))
    go.add_argument("--horizon", type=int, default=3)
    go.add_argument("--candidates", type=int, default=16)
    go.add_argument("--iterations", type=int, default=1)
    go.add_argument("--episodes", type=int, default=20)
    go.add_argument("--parallel", type=int, default=10)
    go.add_argument("--threads", type=int, default=1)
    rep = commands.add_parser("report", help="the table, the error figure and planning.json")
    rep.add_argument("--world-models", type=Path, default=Path("runs/planning"))
    rep.add_argument("--rl-runs", type=Path, default=Path("runs/occlusion"))
    rep.add_argument("--docs", type=Path, default=Path("docs"))
    rep.add_argument("--results", type=Path, default=Path("experiments/results"))
    rep.add_argument("--bound-episodes", type=int, default=20)
    args = parser.parse_args()
    if args.command == "run":
        for name, allowed in (("models", MODELS), ("settings", SETTINGS)):
            unknown = sorted(set(getattr(args, name)) - set(allowed))
            if unknown:
                parser.error(f"unknown {name} {unknown}; choose from {', '.join(allowed)}")
        run(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
