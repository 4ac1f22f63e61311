"""Shared pieces of the command line: the console, one-line errors, env names, list parsing."""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from fernn.errors import FERNNError

console = Console()
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def fail(message: str) -> None:
    """Print one clear error line (terminal colour codes of other libraries' messages removed, several lines joined)
    and exit with status 2."""
    text = " ".join(ANSI.sub("", str(message)).split())
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(text)}", highlight=False)
    raise typer.Exit(2)


def pixel_size_flag(pixel_size: int | None, frame_size: int | None) -> int | None:
    """The side rendered frames are resized to: ``--pixel-size``, or ``--frame-size``, its old name in the pixel
    commands (``--frame-size`` is KTH's frame side in ``train``), with a note; both at once is refused."""
    if frame_size is None:
        return pixel_size
    if pixel_size is not None:
        fail("--frame-size is the old name of --pixel-size: give --pixel-size only")
    Console(stderr=True).print("note: --frame-size is the old name of --pixel-size here (--frame-size is KTH's "
                               "frame side in fernn-rl train); use --pixel-size", highlight=False)
    return frame_size


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


#: what a command turns into one ``error:`` line: this package's errors (:class:`fernn.FERNNError`: a missing
#: extra, a damaged file, a run that exists, ...), bad values (``ValueError``, ``TypeError``), files that cannot be
#: read or written (``OSError``) and Gymnasium's errors
EXPECTED = (FERNNError, ValueError, TypeError, OSError)


#: ``fernn-rl --debug`` of the command being run (set by the command line's callback on every invocation)
DEBUG = False


def debugging() -> bool:
    """Whether errors show their full traceback: ``fernn-rl --debug`` or ``FERNN_DEBUG=1``."""
    import os

    return DEBUG or os.environ.get("FERNN_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def is_a_bug(error: BaseException) -> bool:
    """A ``TypeError`` the interpreter raised (a bad call or operand: a bug of the code), not one a check raised with
    its message for the user: the innermost frame's statement is no ``raise``."""
    import linecache
    import traceback

    if not isinstance(error, TypeError) or isinstance(error, FERNNError) or error.__traceback__ is None:
        return False
    last = traceback.extract_tb(error.__traceback__)[-1]
    statement = [linecache.getline(last.filename, line).strip() for line in range(max(1, last.lineno - 3),
                                                                                  last.lineno + 1)]
    return not any(line.startswith("raise") for line in statement)


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so that every expected error is one ``error:`` line and exit status 2: the one place the
    command line catches errors. With ``--debug`` (``FERNN_DEBUG=1``) every error shows its traceback, and a bug
    (:func:`is_a_bug`) always does: it is never dressed as a user's mistake."""
    import gymnasium as gym

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (*EXPECTED, gym.error.Error) as error:
            if debugging() or is_a_bug(error):
                raise
            fail(str(error) or type(error).__name__)

    return wrapper


def resolve_env(name: str) -> str:
    """A CLI name (``kth-camera``), a registered id (``KTHCamera-v0``, ``ALE/Breakout-v5``) or a ``module:Id`` -> the id
    to ``gym.make`` (:func:`fernn.envs.resolve_env_id`), or a one-line error."""
    from fernn.envs import resolve_env_id

    try:
        return resolve_env_id(name)
    except ValueError as error:
        fail(str(error))
    raise AssertionError  # fail() exits


def checked_device(name: str):
    """``--device`` as a ``torch.device`` (:func:`fernn.devices.resolve_device`), or a one-line error."""
    from fernn.devices import resolve_device

    try:
        return resolve_device(name, name="--device")
    except ValueError as error:
        fail(str(error))
    raise AssertionError


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


def check_json_path(path: Optional[Path]) -> None:
    """Fail before the work when ``--json`` cannot be written (a file where a folder must be)."""
    if path is None:
        return
    if path.is_dir():
        fail(f"--json {path} is a directory; give a file path such as {path / 'bench.json'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"--json {path} cannot be written: {parent} is a file, not a directory")
            try:  # the write is a temporary file in the folder, renamed: probe exactly that
                handle, probe = tempfile.mkstemp(dir=parent, prefix=".fernn-probe.")
                os.close(handle)
                os.unlink(probe)
            except OSError as error:
                fail(f"--json {path} cannot be written: {parent} does not take new files ({error.strerror})")
            break


def write_json_flag(path: Optional[Path], payload: dict) -> None:
    """Write ``--json`` (nothing when it was not given) and say so; a failure is one error line."""
    if path is None:
        return
    from fernn.agents.runs import write_json

    try:
        write_json(path, payload)
    except OSError as error:
        fail(f"cannot write --json {path}: {error.strerror or error}")
    console.print(f"wrote {path}")
