import os
import warnings

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGLET_HEADLESS", "1")  # MiniWorld (the block-world benchmark peer) renders with EGL
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one thread each, in subprocesses too
    os.environ["OMP_NUM_THREADS"] = "1"
warnings.filterwarnings("ignore", message=".*py3nj.*")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# Hypothesis: few examples per property in `make test` (bounded CI time), many in `make test-all`.
settings.register_profile("ci", max_examples=15, deadline=None, derandomize=True)
settings.register_profile("slow", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped without a CUDA device (``make test-gpu`` runs them on one)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


KTH_PERSONS = (1, 2, 17, 21)  # two train persons, one val, one test


@pytest.fixture(scope="session")
def kth_root(tmp_path_factory):
    """A session-wide miniature synthetic KTH in the official layout (72 frames per video: two 36-frame segments)."""
    from fernn.envs.kth_synthetic import make_synthetic_kth

    return make_synthetic_kth(tmp_path_factory.mktemp("kth_data"), persons=KTH_PERSONS, frames=72)
