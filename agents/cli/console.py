"""Shared pieces of the command line: the console, one-line errors, env names, list parsing."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from fernn._extras import MissingExtraError

console = Console()


def fail(message: str) -> None:
    """Print one clear error line and exit with status 2."""
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(2)


def parse_list(name: str, text: str, kind: type = int) -> tuple:
    """Parse comma-separated ``kind`` values (``"0,1,2"``), or fail with a clear message."""
    example = "0,1,2" if kind is int else "-40,0,40"
    try:
        values = tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        fail(f"{name} must be comma-separated {'integers' if kind is int else 'numbers'} such as {example}; "
             f"got {text!r}")
    if not values:
        fail(f"{name} must name at least one value such as {example}; got {text!r}")
    return values


def parse_int_list(name: str, text: str) -> tuple[int, ...]:
    return parse_list(name, text, int)


def parse_float_list(name: str, text: str) -> tuple[float, ...]:
    return parse_list(name, text, float)


def parse_pairs(name: str, text: str) -> list[list[int]]:
    """Parse ``"1,0;0,1"`` into ``[[1, 0], [0, 1]]``, or fail with a clear message."""
    pairs = []
    for part in text.split(";"):
        values = parse_int_list(name, part) if part.strip() else ()
        if len(values) != 2:
            fail(f"{name} must be (vx,vy) integer pairs separated by ';', such as 1,0;0,-1; got {text!r}")
        pairs.append(list(values))
    return pairs


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so that a missing optional dependency is one ``error:`` line naming its extra."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MissingExtraError as error:
            fail(str(error))

    return wrapper


def resolve_env(name: str) -> str:
    """A CLI name (``kth-camera``), a registered id (``KTHCamera-v0``) or a ``module:Id`` (the module is imported,
    as ``gym.make`` does) -> the id to ``gym.make``, or a one-line error."""
    import gymnasium as gym

    from fernn.envs import ENV_IDS  # importing fernn.envs registers its ids

    if name in ENV_IDS:
        return ENV_IDS[name]
    if name in gym.registry:
        return name
    if ":" in name:
        module, _, env_id = name.partition(":")
        try:
            import importlib

            importlib.import_module(module)
        except ImportError as error:
            fail(f"env {name!r}: cannot import module {module!r} ({error})")
        if env_id in gym.registry:
            return name
    fail(f"unknown env {name!r}; accepted: {', '.join(ENV_IDS)}, any registered Gymnasium id, or module:Id (the "
         "module is imported first)")
    raise AssertionError  # fail() exits


def parse_json_object(name: str, text: str | None) -> dict:
    """Parse a JSON object flag (``--env-kwargs '{"world_size": 40}'``), or fail naming the flag."""
    import json

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"{name} must be a JSON object such as '{{\"world_size\": 40}}'; got {text!r} ({error})")
    if not isinstance(value, dict):
        fail(f"{name} must be a JSON object (keyword arguments), got {text!r}")
    return value
