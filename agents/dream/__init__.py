"""Learning in imagination: an actor-critic trained only on a world model's imagined rollouts (the Dreamer recipe),
then acting in the real env at policy speed: ``fernn-rl dream`` is :func:`train_dream`.

The world model is any :class:`fernn.imagination.WorldModelProtocol` (a 2-D :class:`fernn.WorldModel`, FloWM-3D,
the RSSM, a user's own): the dream uses its protocol members only. Start states are the model's states after
``context`` real views of the episodes it was trained on (random episodes: no environment steps beyond them). From
each, the actor imagines ``horizon`` steps: it picks a move from the state, the world model moves the state by it
and predicts the view (``imagine_step``), the reward is scored on the predicted view (the planner's ``target_ink``
on the tracking envs, or a reward head fitted to recorded rewards). Then, as DreamerV3 does:

* λ-returns ``R_k = r_{k+1} + γ ((1 - λ) v(s_{k+1}) + λ R_{k+1})``, bootstrapped by the critic at the horizon;
* returns normalised by the running (decay 0.99) range between their 5th and 95th percentiles, at least 1;
* REINFORCE for the discrete actions, ``-(R_k - v(s_k)) / scale * log π(a_k | s_k)``, and an entropy bonus;
* the critic regressed on the λ-returns.

The actor reads a map of translation velocities through the equivariant head
(:class:`fernn.agents.heads.VelocityActorHead`: a move's logit from that move's velocity channel), the critic
through a head on the velocity-pooled map; any other state through a head of its shape
(:func:`~fernn.agents.dream.networks.state_reader`). In the real env the policy carries the world model's state
from step to step as the planner does (:class:`fernn.agents.planning.ModelTracker`: observe, then act), but
decides with one pass of the actor instead of imagining hundreds of candidates.

The run is a run directory of kind ``dream``: ``config.json``, ``metrics.csv`` (per log interval: imagined return,
losses, entropy), ``eval.csv`` (real-env returns during training), ``checkpoints/last.pt`` (resume) and
``checkpoints/final.pt``, ``results.json`` (the real-env evaluations of every setting). ``fernn-rl eval`` and
``rollout`` take it.

The package keeps the recipe's parts apart: ``config`` (the run's settings), ``networks`` (the actor-critic and the
policy that acts with it), ``losses`` (one update) and ``loop`` (start states, rewards, the training loop, its
evaluations and resume points).
"""

from fernn.agents.dream.config import SCORES, TRACKING_SETTINGS, DreamConfig
from fernn.agents.dream.losses import imagination_update, lambda_returns
from fernn.agents.dream.loop import (StartStates, check_action_set, check_world_model_identity, evaluate_policy,
                                     evaluate_settings, load_dream, reward_function, settings_of, train_dream)
from fernn.agents.dream.networks import ImaginationActorCritic, ImaginedPolicy

__all__ = ["SCORES", "TRACKING_SETTINGS", "DreamConfig", "ImaginationActorCritic", "ImaginedPolicy", "StartStates",
           "check_action_set", "check_world_model_identity", "evaluate_policy", "evaluate_settings",
           "imagination_update", "lambda_returns", "load_dream", "reward_function", "settings_of", "train_dream"]
