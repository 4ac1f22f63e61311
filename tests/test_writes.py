"""Every file the package writes is the old one or the new one, never a torn one: each write goes through
``fernn.io.atomic_write`` (checked over the whole source tree), and ``atomic_write`` itself survives a kill at
any point of the write (fault injection, with SIGKILL)."""

import ast
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fernn.io import atomic_write

ROOT = Path(__file__).resolve().parents[1]
#: calls that write a file
WRITERS = {"write_text", "write_bytes", "save", "savefig", "dump"}
#: writers allowed outside atomic_write: a resumable download's .part file (renamed only when verified), the
#: run lock file (no data), and videos written into a temporary directory before they are zipped atomically
ALLOWED = {("envs/storage.py", "open"), ("agents/runs.py", "open"), ("envs/kth_synthetic.py", "open"),
           ("agents/collect.py", "save")}  # TrajectoryDataset.save, itself an atomic_write


def _writes_outside_atomic_write(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        writes_open = name == "open" and any(isinstance(a, ast.Constant) and isinstance(a.value, str) and
                                             a.value[:1] in "wax" for a in node.args[1:2])
        if name not in WRITERS and not writes_open:
            continue
        ancestor, inside = parents.get(node), False
        while ancestor is not None:
            if isinstance(ancestor, ast.Call) and getattr(ancestor.func, "id", "") == "atomic_write":
                inside = True
                break
            ancestor = parents.get(ancestor)
        relative = str(path.relative_to(ROOT))
        if not inside and (relative, name) not in ALLOWED:
            found.append(f"{relative}:{node.lineno} {name}()")
    return found


def test_every_write_of_the_package_is_atomic():
    sources = [p for folder in ("fernn", "envs", "agents") for p in (ROOT / folder).rglob("*.py")]
    found = [hit for path in sources for hit in _writes_outside_atomic_write(path)]
    assert found == [], "writes outside fernn.io.atomic_write: " + ", ".join(found)


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")

    def half_then_fail(tmp):
        tmp.write_text("ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from fernn.io import atomic_write

    def slow(tmp):
        with open(tmp, "w") as fh:
            for i in range(400):
                fh.write("new " * 4096)
                fh.flush()
                if i == 0:
                    print("writing", flush=True)
                time.sleep(0.005)

    atomic_write(Path(sys.argv[1]), slow)
""")


@pytest.mark.parametrize("delay", [0.0, 0.2, 0.6])
def test_a_write_killed_at_any_point_leaves_the_old_or_the_new_file(tmp_path, delay):
    target = tmp_path / "metrics.csv"
    target.write_text("old")
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    time.sleep(delay)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    content = target.read_text()
    assert content == "old" or content == "new " * 4096 * 400
