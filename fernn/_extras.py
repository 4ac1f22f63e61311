"""Optional dependencies: one clear error naming the extra that provides a missing package.

``pip install fernn-rl`` gives the model layer, the environments and the CLI; the rest comes as extras::

    [rl]        stable-baselines3, sb3-contrib, tensorboard   (RL policies and runs; supervised runs' TensorBoard logs)
    [rotation]  escnn's C_N requirements                    (RotationFlow; escnn itself: pip install --no-deps escnn)
    [play]      pygame                                      (human rendering, keyboard play)
    [plots]     matplotlib                                  (figures of evaluations and learning curves)
    [video]     av, pillow                                  (GIFs and videos of rollouts; KTH's .avi decoding)
    [pixels]    opencv-python-headless                      (resized rendered frames: --pixels --frame-size)
    [atari]     ale-py                                      (the Atari example)
    [all]       everything above
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from fernn.errors import FERNNError


class MissingExtraError(FERNNError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def install_line(extra: str) -> str:
    """The command that installs ``extra`` (from a clone, the way that works before the package is on PyPI)."""
    return f"pip install '.[{extra}]' in a clone of fernn-rl (or pip install 'fernn-rl[{extra}]' from an index that has it)"


def installed(module: str) -> bool:
    """Whether ``module``'s top-level package can be found (without importing it)."""
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` saying that ``feature`` needs ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if installed(module):
            raise  # installed but broken: the original error says more
        raise MissingExtraError(f"{feature} needs the optional package {module.split('.')[0]!r}, which is not "
                                f"installed: {install_line(extra)}") from error
