"""``fernn-rl envs``: every registered fernn id with its spaces, reward and ``gym.make`` defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass

import gymnasium as gym

from fernn.envs import ENV_IDS, DataMissingError
from fernn.envs.core import scene_options


@dataclass
class EnvEntry:
    env_id: str
    cli_name: str
    observation_space: str
    action_space: str
    reward: str
    defaults: dict
    max_episode_steps: int | None


def _paragraph(doc: str, title: str) -> str:
    """The first paragraph of a Gymnasium-style docstring section, as written (its lines)."""
    match = re.search(rf"## {title}\n(.*?)(\n\s*\n|$)", doc, re.S)
    return match.group(1) if match else ""


def _section(doc: str, title: str) -> str:
    """The first paragraph of a Gymnasium-style docstring section, on one line."""
    return " ".join(_paragraph(doc, title).split())


def _reward(doc: str, env_id: str) -> str:
    """The Rewards section for ``env_id``: a line of the section that starts with ``<id>:`` (an id of the family
    with its own reward), else the section without such lines."""
    own, common, target = [], [], None
    for line in _paragraph(doc, "Rewards").splitlines():
        head = re.match(r"\s*([A-Za-z][\w-]*-v\d+):\s*(.*)", line)
        if head:
            target, line = head.group(1), head.group(2)
        (own if target == env_id else common if target is None else []).append(line)
    text = " ".join(" ".join(own or common).split())
    return text.replace("``", "").replace(":class:", "")


def catalog() -> list[EnvEntry]:
    """Describe every id of :data:`fernn.envs.ENV_IDS` (spaces from a built env, or from the docs when
    the env needs data that is not on disk)."""
    entries = []
    for name, env_id in ENV_IDS.items():
        spec = gym.spec(env_id)
        env_class = gym.envs.registration.load_env_creator(spec.entry_point)
        doc = env_class.__doc__ or ""
        try:
            env = gym.make(env_id)
            observation, action = str(env.observation_space), str(env.action_space)
            env.close()
        except DataMissingError:
            row = re.search(r"\| ``\((.*?)\)`` \| (\w+) \|", doc)
            observation = f"Box(0, 255, ({row.group(1)}), {row.group(2)}) (needs data)" if row else "(needs data)"
            action = _section(doc, "Action Space").split(":")[0].strip("`")
        defaults = {**scene_options(env_class.make_batch), **spec.kwargs}
        for key, value in defaults.items():  # sizes named in the docs -> their default values
            observation = observation.replace(key, str(value))
        reward = _reward(doc, env_id)
        entries.append(EnvEntry(env_id, name, observation, action, reward, defaults, spec.max_episode_steps))
    return entries
