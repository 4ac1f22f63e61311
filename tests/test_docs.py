"""Every code block of the README and of docs/*.md, executed.

* ``python`` blocks run in order, one shared namespace per page, in a temporary working directory. A block
  may be preceded by ``<!-- test: "A" -> "B" -->`` (one or more pairs): the test runs it with ``A`` replaced
  by ``B`` (a tiny budget for a long run: the same code, fewer steps).
* ``bash`` blocks marked ``<!-- test: run ... -->`` (a worked example) run too, in the same order and directory:
  each ``fernn-rl`` line through the CLI, which must succeed.
* ``bash`` blocks: every ``fernn-rl`` command (also under ``torchrun -m fernn.agents.cli``) is parsed by the CLI
  itself (the command path exists, every flag exists and its value has the right type); ``make`` targets
  must exist in the Makefile, scripts named in ``python examples/...`` / ``bash experiments/...`` must exist;
  ``pip install`` lines are installation steps. Any other command fails the test.
"""

import re
import shlex
from pathlib import Path

import pytest
import typer

from fernn.agents.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(?:<!-- test: (?P<run>run )?(?P<subs>.*?) -->\n)?```(?P<lang>\w+)\n(?P<code>.*?)\n```", re.S)
SUBSTITUTION = re.compile(r'"((?:[^"\\]|\\.)*)"\s*->\s*"((?:[^"\\]|\\.)*)"')


def blocks(page: Path, lang: str, *, runnable: bool = False) -> list[str]:
    """The code of the page's ``lang`` blocks, substitutions applied (``runnable``: the blocks the tests run: every
    python block, and the bash blocks marked ``run``)."""
    found = []
    for match in FENCE.finditer(page.read_text()):
        if match["lang"] != lang or (runnable and lang == "bash" and not match["run"]):
            continue
        code = match["code"]
        for old, new in SUBSTITUTION.findall(match["subs"] or ""):
            assert old in code, f"{page.name}: substitution {old!r} not found in its block"
            code = code.replace(old, new)
        found.append(code)
    return found


def runnable_blocks(page: Path) -> list[tuple[str, str]]:
    """``(lang, code)`` of the blocks the tests run, in page order."""
    python, bash = iter(blocks(page, "python")), iter(blocks(page, "bash", runnable=True))
    order = [m["lang"] for m in FENCE.finditer(page.read_text())
             if m["lang"] == "python" or (m["lang"] == "bash" and m["run"])]
    return [(lang, next(python if lang == "python" else bash)) for lang in order]


@pytest.mark.parametrize("page", [p for p in PAGES if runnable_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for lang, code in runnable_blocks(page):
        if lang == "python":
            exec(compile(code, f"{page.name}", "exec"), namespace)  # noqa: S102 - the docs' own examples
            continue
        for words in shell_lines(code):
            assert words[0] == "fernn-rl", f"{page.name}: a worked example runs fernn-rl lines only: {words}"
            result = CliRunner().invoke(app, words[1:])
            assert result.exit_code == 0, f"{page.name}: {' '.join(words)}\n{result.output}"


def parse_cli(args: list[str]) -> None:
    """Parse ``fernn-rl ARGS`` down to the leaf command without running it (raises on a bad flag/value)."""
    command = typer.main.get_command(app)
    context = command.make_context("fernn-rl", list(args))
    while hasattr(command, "resolve_command"):
        rest = [*(getattr(context, "protected_args", None) or getattr(context, "_protected_args", [])), *context.args]
        name, command, rest = command.resolve_command(context, rest)
        context = command.make_context(name, rest, parent=context)


def shell_lines(code: str) -> list[list[str]]:
    lines = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            lines.append(words)
    return lines


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "bash")], ids=lambda p: p.name)
def test_shell_blocks_name_real_commands(page):
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for code in blocks(page, "bash"):
        for words in shell_lines(code):
            program, args = words[0], words[1:]
            if program == "fernn-rl":
                parse_cli(args)
            elif program == "torchrun":
                module = args.index("-m")
                assert args[module + 1] == "fernn.agents.cli", words
                parse_cli(args[module + 2:])
            elif program == "make":
                assert set(a for a in args if "=" not in a) <= targets, f"{page.name}: unknown make target in {words}"
            elif program in ("python", "bash") and args and args[0].startswith(("examples/", "experiments/")):
                assert (ROOT / args[0]).is_file(), f"{page.name}: {args[0]} does not exist"
            elif program == "pip":
                assert args[0] == "install", words
            else:
                pytest.fail(f"{page.name}: a shell line this test cannot check: {' '.join(words)}")


def test_the_wheels_long_description_has_no_relative_links():
    import tomllib

    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    text = (ROOT / readme["file"]).read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert all(link.startswith(("http://", "https://")) for link in links), links
