"""fernn: flow-equivariant recurrent neural networks (FERNNs) in PyTorch.

The core layer is :class:`FERNN`; flows are :class:`TranslationFlow` (integer velocities) and
:class:`RotationFlow` (angular velocities, escnn); :class:`WorldModel` adds the agent's self-motion. :func:`check_equivariance` measures the
equivariance error of any module.
"""

from fernn.cell import FERNN, GRNNPlus
from fernn.equivariance import EquivarianceReport, check_equivariance
from fernn.flows import Flow, RotationFlow, TranslationFlow
from fernn.models import CNN3DClassifier, NextFramePredictor, SequenceClassifier
from fernn.world_model import WorldModel

__all__ = [
    "FERNN", "GRNNPlus", "Flow", "TranslationFlow", "RotationFlow", "NextFramePredictor", "SequenceClassifier", "CNN3DClassifier",
    "WorldModel",
    "check_equivariance", "EquivarianceReport",
]
__version__ = "0.1.0"
