"""``fernn-rl train --algo ALGO``: flags to an :class:`~fernn.agents.rl.RLConfig`, then
:func:`fernn.agents.rl.train_rl`."""

from __future__ import annotations

from typing import Any

from fernn.agents.cli.console import console, parse_json_object, pixel_size_flag

#: flag name -> RLConfig field (where they differ)
FIELDS = {"hidden": "fernn_hidden", "pixel_size": "frame_size", "frame_size": "frame_size"}
PASSED = ("algo", "policy", "timesteps", "n_envs", "vec_env", "n_steps", "n_epochs", "eval_every", "eval_episodes",
          "readout", "actor", "reward_scale", "obs_key", "seed", "lr", "hidden", "vmax", "batch_size", "device", "out",
          "name", "pixel_size", "frame_size", "relaxed", "relax_alpha")
SWITCHES = ("self_motion", "pixels", "grayscale", "add_channel")


def config_of(values: dict[str, Any]):
    """The RLConfig the flags give (``--env`` defaults to mnist-world-track)."""
    from fernn.agents.rl import RLConfig

    values = {**values, "pixel_size": pixel_size_flag(values["pixel_size"], values["frame_size"]), "frame_size": None}
    settings = {FIELDS.get(name, name): values[name] for name in PASSED if values[name] is not None}
    settings.update({name: True for name in SWITCHES if values[name]})
    settings["env"] = values["env"] or "mnist-world-track"
    if values["env_kwargs"] is not None:
        settings["env_kwargs"] = parse_json_object("--env-kwargs", values["env_kwargs"])
    return RLConfig.from_dict(settings, "the flags"), settings


def run(values: dict[str, Any], typed: set[str]) -> None:
    """Train an RL run from the flags (see :mod:`fernn.agents.cli.train`)."""
    from fernn.agents.rl import train_rl

    config, settings = config_of(values)
    explicit = {FIELDS.get(name, name) for name in typed} & set(settings) | {"env", "algo"} & set(settings)
    if not values["quiet"]:
        console.print(f"[{config.name}] {config.env}, {config.policy} policy, training rewards x {config.reward_scale}",
                      highlight=False, markup=False)
    report = None if values["quiet"] else (lambda row: console.print(
        f"[{config.name}] steps {row['timesteps']:.0f}: return {row['mean_return']:.2f} ± {row['std_return']:.2f} "
        f"({row['seconds']:.0f} s)", highlight=False, markup=False))
    results = train_rl(config, resume=values["resume"], overwrite=values["overwrite"], reporter=report,
                       explicit=explicit)
    final = results["final"]
    bounds = ", ".join(f"{k} {v['mean']:.2f}" for k, v in results["bounds"].items())
    console.print(f"final return {final['mean_return']:.2f} ± {final['std_return']:.2f} after "
                  f"{final['timesteps']:.0f} steps ({bounds}); files in {config.out}/{config.name}")
