"""The SB3 policies' former module path, kept so that existing imports keep working; they live in
:mod:`fernn.agents.rl.policies`."""

from fernn.agents.rl.policies import (FERNNCore, FERNNFrameStackExtractor, FERNNRecurrentPolicy, FERNNRecurrentPPO,
                                      LeanRecurrentRolloutBuffer, ReadoutHead, SmallCNN)

__all__ = ["FERNNCore", "FERNNFrameStackExtractor", "FERNNRecurrentPolicy", "FERNNRecurrentPPO",
           "LeanRecurrentRolloutBuffer", "ReadoutHead", "SmallCNN"]
