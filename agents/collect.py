"""Collecting a trajectory file from any Gymnasium env (what ``fernn-rl collect`` does): the env built as the
flags ask (this package's native vector version when nothing wraps it, rendered frames, an image key, a channel
axis, or an RL run's own wrappers when its saved policy acts), the episodes collected
(:func:`fernn.envs.collect_episodes`) and the file written with what was asked recorded in its ``meta``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym


def collect_file(env: str, out: str | Path, *, episodes: int = 100, max_steps: int | None = None,
                 env_kwargs: dict[str, Any] | None = None, policy: str = "random", pixels: bool = False,
                 frame_size: int | None = None, grayscale: bool = False, add_channel: bool = False,
                 obs_key: str | None = None, moves: str | None = None, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None):
    """Collect ``episodes`` episodes of ``env`` into the trajectory file ``out`` (``.npz``, written atomically) and
    return the :class:`fernn.envs.TrajectoryDataset`.

    Args:
        policy: ``random``, a scripted policy of the env by name (the block world's ``biased-walk``), or an RL run
            directory whose saved policy acts (deterministic; the run's own observation settings are used).
        pixels, frame_size, grayscale: observe the env's rendered frames, resized and grayscale.
        add_channel, obs_key: a channel axis for 2-D images; the image key of Dict observations.
        moves: the info key of the observer's own move (default: ``info["action"]`` or ``info["self_motion"]``).
        progress: called with ``(episodes done, episodes)``.

    Raises:
        ValueError: flags that contradict each other or the policy's run, an env of other observations than the
            policy's, a policy that is none of the above.
    """
    from fernn.envs import collect_episodes, make_env, pixel_observations, resolve_env_id
    from fernn.envs.wrappers import ImageKey, with_channel_axis

    env_id, kwargs, out = resolve_env_id(env), dict(env_kwargs or {}), Path(out)
    if (frame_size is not None or grayscale) and not pixels:
        raise ValueError("--pixel-size and --grayscale apply to rendered frames: add --pixels")
    if out.suffix != ".npz":
        raise ValueError(f"--out must name a .npz file, got {out}")
    run = _rl_run(policy)
    if run is not None:  # the saved policy sees what it was trained on: the run's pixel settings and wrappers
        given = {"pixels": pixels, "frame_size": frame_size, "grayscale": grayscale, "obs_key": obs_key,
                 "add_channel": add_channel}
        differ = [f"--{k.replace('_', '-')}" for k, v in given.items()
                  if v not in (None, False) and v != getattr(run, k)]
        if differ:
            raise ValueError(f"{', '.join(differ)} differ from the settings the policy in {policy} was trained with; "
                             "leave them out (the run's own are used)")
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
    dataset = collect_episodes(made, episodes, max_steps=max_steps, policy=acting, seed=seed, moves=moves,
                               progress=progress)
    dataset.meta.update(env_id=env_id, env_kwargs=kwargs, pixels=pixels, frame_size=frame_size,
                        grayscale=grayscale, policy=policy)
    dataset.save(out)
    return dataset


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
