"""Reinforcement learning with FERNN policies (Stable-Baselines3 / sb3-contrib).

=====================  ==========================================================================
module                 what lives there
=====================  ==========================================================================
``memory``             the FERNN memory of a recurrent policy and its equivariant actor head
``policies``           the FERNN recurrent policy (through sb3-contrib's constructors), the lean rollout buffer
``extractors``         image spaces read as SB3 reads them, the FERNN readout, small-window extractors
``config``             :class:`RLConfig`, one run's settings
``envs``               the vectorised training envs (reward scaling, frame stacks, action channels)
``evaluation``         seeded evaluations, random / oracle bounds, the evaluate-and-checkpoint callback
``models``             the SB3 model of a config, built or loaded
``training``           :func:`train_rl`: a run directory from config to ``results.json``
``figures``            reading ``eval.csv``, learning curves, episode GIFs
=====================  ==========================================================================

Needs the ``[rl]`` extra (``pip install '.[rl]'`` in a clone).
"""

from fernn._extras import require

require("stable_baselines3", "rl", "reinforcement learning (Stable-Baselines3)")
require("sb3_contrib", "rl", "recurrent PPO (sb3-contrib)")

from fernn.agents.rl.config import EVAL_SEED, RL_ALGOS, RL_POLICIES, RL_READOUTS, RLConfig  # noqa: E402
from fernn.agents.rl.envs import ScaledReward, make_vec_env  # noqa: E402
from fernn.agents.rl.evaluation import (EvalCheckpointCallback, best_fixed_move, env_bounds,  # noqa: E402
                                        evaluate_policy, evaluate_run, policy_bounds)
from fernn.agents.rl.figures import episode_gif, learning_curve, read_evaluations, training_seconds  # noqa: E402
from fernn.agents.rl.memory import ACTORS, FERNNMemory  # noqa: E402
from fernn.agents.rl.policies import (FERNNCore, FERNNFrameStackExtractor, FERNNRecurrentPolicy,  # noqa: E402
                                      FERNNRecurrentPPO, LeanRecurrentRolloutBuffer, SmallCNN)
from fernn.agents.rl.models import load_model, load_policy, make_model  # noqa: E402
from fernn.agents.rl.training import train_rl  # noqa: E402

__all__ = [
    "EVAL_SEED", "RL_ALGOS", "RL_POLICIES", "RL_READOUTS", "RLConfig", "ScaledReward", "make_vec_env",
    "EvalCheckpointCallback", "best_fixed_move", "env_bounds", "evaluate_policy", "evaluate_run", "policy_bounds",
    "episode_gif", "learning_curve", "read_evaluations", "training_seconds", "ACTORS", "FERNNCore", "FERNNMemory",
    "FERNNFrameStackExtractor", "FERNNRecurrentPolicy", "FERNNRecurrentPPO", "LeanRecurrentRolloutBuffer",
    "SmallCNN", "load_model", "load_policy", "make_model", "train_rl",
]
