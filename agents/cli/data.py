"""``fernn-rl collect``: episodes of any Gymnasium env with image (or rendered) observations, into one ``.npz``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import gymnasium as gym
import typer

from fernn.agents.cli.console import console, fail, parse_json_object, resolve_env


def collect(
    env: str = typer.Option(..., "--env", help="A registered id, module:Id, or a short name (mnist-world, ...)."),
    out: Path = typer.Option(..., "--out", help="The trajectory file to write (.npz, atomically)."),
    episodes: int = typer.Option(100, "--episodes", min=1, help="Episodes to collect."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Cut episodes after this many steps."),
    env_kwargs: Optional[str] = typer.Option(None, "--env-kwargs", help="gym.make kwargs as JSON, e.g. "
                                                                        "'{\"world_size\": 40}'."),
    policy: str = typer.Option("random", "--policy", help="random (uniform); a scripted policy of the env (the block "
                                                          "world's biased-walk, FloWM's data policy); or an RL run "
                                                          "directory whose saved policy acts (deterministic)."),
    pixels: bool = typer.Option(False, "--pixels", metavar="", help="Observe the env's rendered frames (render_mode="
                                                        "'rgb_array'): for state-based envs."),
    frame_size: Optional[int] = typer.Option(None, "--frame-size", min=8, max=512,
                                             help="Resize pixel observations to this side (with --pixels)."),
    grayscale: bool = typer.Option(False, "--grayscale", metavar="", help="Grayscale pixel observations (with --pixels)."),
    add_channel: bool = typer.Option(False, "--add-channel", metavar="", help="Give 2-D (H, W) image observations a "
                                                                              "channel axis."),
    obs_key: Optional[str] = typer.Option(None, "--obs-key", help="Dict observations: the image key to record (the "
                                                                  "other keys are dropped), e.g. image."),
    moves: Optional[str] = typer.Option(None, "--moves", help="The info key holding the observer's own move (dx, dy); "
                                                              "default: info['action'] (window moves) or "
                                                              "info['self_motion'] (first-person) when the env reports "
                                                              "one."),
    seed: int = typer.Option(0, "--seed", min=0, max=2 ** 32 - 1, help="Seed of the first reset and the policy."),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar="", help="No progress bar."),
) -> None:
    """Collect episodes (observations, actions, rewards, terminations, and the observer's moves when the env
    reports them) into one compressed .npz that `fernn-rl train --data FILE` trains on. Examples:
    fernn-rl collect --env mnist-world --episodes 200 --max-steps 40 --out world.npz;
    fernn-rl collect --env CartPole-v1 --pixels --frame-size 32 --grayscale --episodes 50 --out cartpole.npz;
    fernn-rl collect --env dynamic-block-world --policy biased-walk --episodes 100 --out blocks.npz."""
    from fernn.agents.progress import counted_progress
    from fernn.envs import collect_episodes, make_env, pixel_observations
    from fernn.envs.wrappers import ImageKey, with_channel_axis

    env_id = resolve_env(env)
    kwargs = parse_json_object("--env-kwargs", env_kwargs)
    if (frame_size is not None or grayscale) and not pixels:
        fail("--frame-size and --grayscale apply to rendered frames: add --pixels")
    if out.suffix != ".npz":
        fail(f"--out must name a .npz file, got {out}")
    run = _rl_run(policy)
    if run is not None:  # the saved policy sees what it was trained on: the run's pixel settings and wrappers
        given = {"pixels": pixels, "frame_size": frame_size, "grayscale": grayscale, "obs_key": obs_key,
                 "add_channel": add_channel}
        differ = [f"--{k.replace('_', '-')}" for k, v in given.items() if v not in (None, False) and v != getattr(run, k)]
        if differ:
            fail(f"{', '.join(differ)} differ from the settings the policy in {policy} was trained with; leave them "
                 "out (the run's own are used)")
        made = _run_wrapped(run, make_env(env_id, kwargs, **({"render_mode": "rgb_array"} if run.pixels else {})))
        pixels, frame_size, grayscale = run.pixels, run.frame_size, run.grayscale
    elif native_vector(env_id) and not (pixels or obs_key or add_channel):
        made = gym.make_vec(env_id, num_envs=min(episodes, VECTOR_ENVS), vectorization_mode="vector_entry_point",
                            **kwargs)  # the env's own batched version: every scene stepped in one call
    else:
        made = make_env(env_id, kwargs, **({"render_mode": "rgb_array"} if pixels else {}))
        if obs_key is not None:
            made = ImageKey(made, obs_key)
        if pixels:
            made = pixel_observations(made, frame_size=frame_size, grayscale=grayscale)
        if add_channel:
            made = with_channel_axis(made)
    acting = _saved_policy(Path(policy), made) if run is not None else _acting_policy(policy, made)
    with counted_progress(console, f"collecting {env_id}", episodes, "episodes", quiet=quiet) as update:
        dataset = collect_episodes(made, episodes, max_steps=max_steps, policy=acting, seed=seed, moves=moves,
                                   progress=update)
    dataset.meta.update(env_id=env_id, env_kwargs=kwargs, pixels=pixels, frame_size=frame_size,
                        grayscale=grayscale, policy=policy)
    dataset.save(out)
    lengths = dataset.lengths
    console.print(f"wrote {out}: {len(lengths)} episodes of {int(lengths.min())}-{int(lengths.max())} steps, "
                  f"observations {dataset.observation_shape}, moves {'recorded' if dataset.has_moves else 'not recorded'}")
    if dataset.meta.get("cut_at") is not None:
        console.print(f"note: {env_id} sets no time limit, so episodes were cut at {dataset.meta['cut_at']:,} steps; "
                      "choose another length with --max-steps")


#: scenes a native vector env steps at once while collecting (episodes are kept as they end)
VECTOR_ENVS = 8


def native_vector(env_id: str) -> bool:
    """Whether the env is one of this package's with its batched version (a ``vector_entry_point`` of the same
    observations), which ``collect`` steps instead. Other packages' vector versions may observe differently (ale-py's
    stacks and resizes its frames), so theirs are not substituted."""
    spec = gym.registry.get(env_id)
    return spec is not None and str(spec.vector_entry_point or "").startswith("fernn.envs.")


def _rl_run(policy: str):
    """The RLConfig of an RL run directory given as ``--policy``, or None for a name."""
    from fernn.agents.runs import RunDir

    if not Path(policy).is_dir():
        return None
    run = RunDir(policy)
    if not run.exists() or run.kind() != "rl":
        raise ValueError(f"--policy must be 'random' or an RL run directory; {policy} is not one")
    from fernn.agents.rl import RLConfig

    return RLConfig.from_dict(run.read_config(), str(run.config_path))


def _run_wrapped(config, env):
    from fernn.agents.rl.envs import wrap_env

    return wrap_env(env, config)


def _acting_policy(policy: str, env):
    """``--policy``: ``random``, a scripted policy of the env by name, or an RL run directory's saved policy."""
    scripted = tuple(getattr(env.unwrapped, "scripted_policies", ()))
    if policy == "random" or policy in scripted:
        return policy
    names = f" (or a scripted policy of this env: {', '.join(scripted)})" if scripted else ""
    raise ValueError(f"--policy must be 'random' or an RL run directory{names}; {policy!r} is none of these")


def _saved_policy(run_dir: Path, env):
    """The saved policy of an RL run (loaded without unpickling), acting on ``env``'s observations: refused, naming
    the env it was trained on, when ``env``'s observations or actions are not the ones it takes."""
    from fernn.agents.rl import load_policy

    model, envs, config = load_policy(run_dir)
    envs.close()
    trained, given = tuple(model.observation_space.shape), tuple(env.observation_space.shape)
    channels_first = given[-1:] + given[:-1] if len(given) == 3 else given  # SB3 sees images channels first
    if trained not in (given, channels_first) or model.action_space != env.action_space:
        raise ValueError(f"the policy in {run_dir} was trained on {config.env} {json.dumps(config.env_kwargs)}: "
                         f"observations {trained} (channels first) and actions {model.action_space}; this env gives "
                         f"{given} and {env.action_space}: collect from the env and --env-kwargs it was trained on")
    return model
