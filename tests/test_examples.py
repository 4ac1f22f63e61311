import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_runs():
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
