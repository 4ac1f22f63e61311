"""Planning with the world models of experiments/planning_world_models.sh: the measurements of docs/planning.md.

    python experiments/planning_grid.py run [--world-models runs/planning] [--horizon 3 --candidates 16 --iterations 1]
    python experiments/planning_grid.py report [--world-models runs/planning] [--docs docs] [--results experiments/results]
        [--rl-results experiments/results/rl_occlusion.json]

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


def planning_table(summary: dict, rl_summary: dict | None) -> str:
    """The table of docs/planning.md from ``planning.json``'s summary: every planner's returns per setting (mean ±
    std over seeds, the seed count), decisions/s and imagined error per step; the RL policies of the occlusion grid
    on the same settings and episode seeds (``rl_occlusion.json``: every policy it holds, the equivariant actor
    included); random and oracle."""
    from fernn.envs.tracking_studies import STUDY_CELLS

    settings = list(summary["settings"])

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.1f} ± {np.std(values):.1f} ({len(values)})" if values else ""

    lines = ["| planner / policy | " + " | ".join(settings) + " | decisions/s | imagined MSE (h = 1 .. H) |",
             "|" + "---|" * (len(settings) + 3)]
    for entry in summary["models"].values():
        lines.append(f"| planner, {entry['label']} | " + " | ".join(cell(entry["returns"].get(s, [])) for s in settings)
                     + f" | {entry['decisions_per_second']:.1f} | "
                     + ", ".join(f"{e:.4f}" for e in entry["imagined_mse_per_step"]) + " |")
    for policy in (rl_summary or {}).get("policies", {}).values():
        cells = [policy["cells"].get("{}/gap={}".format(*STUDY_CELLS[s]), {}).get("per_seed", []) for s in settings]
        lines.append(f"| RL: {policy['label']} | " + " | ".join(cell(c) for c in cells) + " | | |")
    for bound in ("random", "oracle"):
        lines.append(f"| {bound} | " + " | ".join(f"{summary['bounds'][s][bound]['mean']:.1f}" for s in settings)
                     + " | | |")
    return "\n".join(lines)


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
    summary = {"settings": {s: env_kwargs(s) for s in settings}, "bounds": bounds, "models": {}}
    for model, by_setting in found.items():
        speeds = [r["decisions_per_second"] for s in settings for r in by_setting.get(s, [])]
        errors = [r["imagined_mse_per_step"] for s in ("seen", "unseen") for r in by_setting.get(s, [])]
        error = np.nanmean(np.array(errors), 0) if errors else []
        summary["models"][model] = {"label": MODELS[model], "imagined_mse_per_step": list(map(float, error)),
                                    "decisions_per_second": float(np.mean(speeds)),
                                    "returns": {s: [r["mean_return"] for r in by_setting.get(s, [])] for s in settings},
                                    "settings": next(iter(by_setting.values()))[0]["settings"]}
    rl_summary = json.loads(args.rl_results.read_text()) if args.rl_results.is_file() else None
    table = planning_table(summary, rl_summary)
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
    rep.add_argument("--rl-results", type=Path, default=Path("experiments/results/rl_occlusion.json"),
                     help="the occlusion grid's results (experiments/rl_occlusion.py report): its RL policies' rows")
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
