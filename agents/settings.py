"""What the run configs share (:class:`~fernn.agents.supervised.config.TrainConfig`,
:class:`~fernn.agents.rl.config.RLConfig`, :class:`~fernn.agents.dream.DreamConfig`): reading one from plain
data (a run's ``config.json``) and the field checks their ``__post_init__`` runs.

Every check raises ``ValueError`` naming the field, the value it got and what is accepted, so a bad value in
a flag or in a hand-edited ``config.json`` is one clear line, never an error from deep inside training.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, TypeVar

SEED_LIMIT = 2 ** 32

T = TypeVar("T", bound="RunSettings")


class RunSettings:
    """Mixin for a run's config dataclass: ``to_dict``, a strict ``from_dict`` and ``replace``."""

    #: what a field of this config is called in messages ("RL setting", "field")
    field_word = "setting"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], values: Any, source: str = "config") -> T:
        """A config from plain data, or a ``ValueError`` naming ``source`` and the field that is unknown or bad."""
        if not isinstance(values, dict):
            raise ValueError(f"{source} must be a JSON object of settings, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source} has unknown {cls.field_word}(s) {', '.join(unknown)}; accepted: "
                             f"{', '.join(sorted(known))}")
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from error

    def replace(self: T, **changes: Any) -> T:
        """This config with ``changes``, checked as a new one is."""
        return type(self).from_dict({**self.to_dict(), **changes})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_integers(config: Any, names: Iterable[str], *, minimum: int = 1, maximum: int | None = None,
                   optional: Iterable[str] = ()) -> None:
    """Each field of ``names`` an integer ``>= minimum`` (and ``<= maximum``); those in ``optional`` may be None."""
    optional = set(optional)
    for name in names:
        value = getattr(config, name)
        if value is None and name in optional:
            continue
        if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
            accepted = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise ValueError(f"{name} must be an integer {accepted}; got {value!r}")


def check_number(config: Any, name: str, *, low: float = 0.0, high: float = math.inf, low_open: bool = False,
                 optional: bool = False, meaning: str = "a number") -> None:
    """The field ``name`` a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    value = getattr(config, name)
    if value is None and optional:
        return
    if not _is_number(value) or value > high or value < low or (low_open and value == low):
        if high == math.inf:
            accepted = f"a positive {meaning.removeprefix('a ')}" if low_open and low == 0 else f"{meaning} >= {low}"
        else:
            accepted = f"{meaning} in {'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be {accepted}{' or None' if optional else ''}; got {value!r}")


def check_strings(config: Any, names: Iterable[str], *, optional: bool = False, meaning: str = "a string") -> None:
    """Each field of ``names`` a string (or None with ``optional``)."""
    for name in names:
        value = getattr(config, name)
        if not (isinstance(value, str) or (optional and value is None)):
            raise ValueError(f"{name} must be {meaning}{' or unset' if optional else ''}; got {value!r}")


def check_flags(config: Any, names: Iterable[str]) -> None:
    """Each field of ``names`` a bool."""
    for name in names:
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} must be true or false; got {getattr(config, name)!r}")


def check_choice(config: Any, name: str, choices: Iterable[str]) -> None:
    """The field ``name`` one of ``choices``."""
    choices = tuple(choices)
    if getattr(config, name) not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {getattr(config, name)!r}")


def check_seed(config: Any) -> None:
    """``config.seed`` an integer in ``[0, 2**32 - 1]`` (what numpy and torch accept)."""
    if not _is_int(config.seed) or not 0 <= config.seed < SEED_LIMIT:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1]; got {config.seed!r}")


def check_env_kwargs(value: Any) -> None:
    """``gym.make`` keyword arguments: a dict with string keys."""
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"env_kwargs must be a dict of gym.make keyword arguments; got {value!r}")


__all__ = ["RunSettings", "check_choice", "check_env_kwargs", "check_flags", "check_integers", "check_number",
           "check_seed", "check_strings"]
