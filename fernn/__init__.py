"""fernn: flow-equivariant recurrent neural networks (FERNNs) in PyTorch.

The core layer is :class:`FERNN`; flows are :class:`TranslationFlow` (integer velocities) and
:class:`RotationFlow` (angular velocities, escnn); :class:`WorldModel` adds the agent's self-motion on a torus and
:class:`WorldModel3D` a first-person agent's turns and steps on an egocentric map (:class:`EgocentricFlow`), with
:class:`RSSM` as its non-equivariant baseline. :func:`check_equivariance` measures the equivariance error of any
module and :func:`equivariance_error` its relative size on data; ``FERNN(..., relaxed=L)`` relaxes the weight sharing
across velocity channels (:mod:`fernn.relaxed`, penalised by :func:`relaxation_penalty`). Every error raised on purpose is a :class:`FERNNError`.
"""

from fernn.cell import FERNN, GRNNPlus
from fernn.egocentric import EgocentricFlow
from fernn.equivariance import EquivarianceReport, check_equivariance, equivariance_error
from fernn.errors import FERNNError
from fernn.flows import Flow, RotationFlow, TranslationFlow
from fernn.relaxed import relaxation_penalty
from fernn.models import CNN3DClassifier, NextFramePredictor, SequenceClassifier
from fernn.rssm import RSSM
from fernn.world_model import WorldModel
from fernn.world_model_3d import WorldModel3D

__all__ = [
    "FERNN", "GRNNPlus", "Flow", "TranslationFlow", "RotationFlow", "NextFramePredictor", "SequenceClassifier", "CNN3DClassifier",
    "WorldModel", "WorldModel3D", "EgocentricFlow", "RSSM", "FERNNError",
    "check_equivariance", "EquivarianceReport", "equivariance_error", "relaxation_penalty",
]
__version__ = "0.1.0"
