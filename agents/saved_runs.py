"""Saved runs of every kind, re-evaluated and rolled out by their recorded kind (``run.json``): what
``fernn-rl eval`` and ``fernn-rl rollout`` call.

Supervised runs go to :func:`fernn.agents.supervised.evaluation.evaluate_saved_run`; RL runs to
:func:`fernn.agents.rl.evaluate_run` (seeded episodes of the saved policy) and
:func:`fernn.agents.rl.episode_gif`; policies learned in imagination (``dream``) to
:func:`fernn.agents.dream.evaluate_settings` and an episode GIF. Nothing is unpickled: checkpoints load as data, RL archives for their weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fernn.agents.runs import RunDir
from fernn.agents.supervised.evaluation import EVALUATIONS


def evaluate_saved(run_dir: str | Path, *, what: tuple[str, ...] = EVALUATIONS, checkpoint: str = "best",
                   episodes: int = 20, device: str = "auto") -> tuple[str, dict[str, Any]]:
    """Rerun a saved run's evaluations and merge them into its ``results.json``: ``(kind, results)``.

    Supervised runs: ``what`` on the ``best`` or ``last`` checkpoint. RL runs: ``episodes`` seeded episodes of the
    ``final`` (``best`` means final) or ``last`` policy, under ``results["reevaluation"]``.
    """
    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory of fernn-rl (no run.json and config.json)")
    kind = run.kind()
    if kind == "supervised":
        from fernn.agents.supervised.evaluation import evaluate_saved_run

        return kind, evaluate_saved_run(run.path, what=what, checkpoint=checkpoint, device=device)
    if kind == "dream":
        from fernn.agents.dream import evaluate_settings, load_dream
        from fernn.devices import resolve_device

        policy, config = load_dream(run.path, str(resolve_device(device)))
        results = {"reevaluation": evaluate_settings(policy.world_model, policy.moves.numpy(), policy.agent, config,
                                                     episodes)}
        run.merge_results(results)
        return kind, results
    from fernn.agents.rl import evaluate_run

    if checkpoint not in ("best", "final", "last"):
        raise ValueError(f"checkpoint for an RL run must be final or last; got {checkpoint!r}")
    result = evaluate_run(run.path, episodes=episodes, checkpoint="last" if checkpoint == "last" else "final",
                          device=device)
    run.merge_results({"reevaluation": result})
    return kind, {"reevaluation": result}



def rollout_saved(run_dir: str | Path, *, device: str = "auto") -> list[Path]:
    """Write a saved run's rollout pictures and return their paths: strips and GIFs of predictions (prediction and
    world-model runs), a GIF of one seeded episode (RL runs).

    Raises:
        ValueError: a run with nothing to roll out (a classifier: KTH clips are classified, not predicted).
    """
    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory of fernn-rl (no run.json and config.json)")
    if run.kind() == "dream":
        from fernn.agents.dream import evaluate_policy, load_dream

        policy, config = load_dream(run.path)
        evaluate_policy(policy.world_model, policy.moves.numpy(), policy.agent, config, 1, gif=run.path / "episode.gif")
        return [run.path / "episode.gif"]
    if run.kind() == "rl":
        from fernn.agents.rl import episode_gif

        if not (run.path / "model.zip").is_file():
            raise FileNotFoundError(f"{run_dir} has no model.zip yet; finish (or --resume) the run first")
        return [episode_gif(run.path, run.path / "episode.gif")]
    from fernn.agents.supervised.config import TrainConfig
    from fernn.agents.supervised.evaluation import evaluate_saved_run

    config = TrainConfig.from_dict(run.read_config(), str(run.config_path))
    if config.env == "kth-camera":
        raise ValueError(f"{run_dir} is an action classifier: its clips are classified, not predicted, so it has no "
                         "rollouts; fernn-rl eval shows its accuracy and confusion matrix")
    results = evaluate_saved_run(run.path, what=("rollout",), device=device)
    return [run.path / name for name in results.get("files", [])]
