"""The SB3 model of an RL run: built from its config, or loaded from a saved run."""

from __future__ import annotations

from pathlib import Path

from fernn.agents.rl.config import RLConfig


def make_model(config: RLConfig, envs, tensorboard: str | None = None):
    """The SB3 model of ``config`` on ``envs``."""
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO

    from fernn.agents.rl.policies import FERNNFrameStackExtractor, FERNNRecurrentPPO, SmallCNN

    common = dict(n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs,
                  learning_rate=config.lr, ent_coef=config.ent_coef, seed=config.seed, device=config.device,
                  tensorboard_log=tensorboard, verbose=0)
    if config.policy == "fernn":
        return FERNNRecurrentPPO("FERNNPolicy", envs, policy_kwargs=dict(fernn_hidden=config.fernn_hidden,
                                                                          vmax=config.vmax,
                                                                          self_motion=config.self_motion), **common)
    if config.policy == "cnn-lstm":
        # sb3-contrib's defaults: a critic LSTM of its own (its shared_lstm=True would detach the critic from
        # the shared features: in this task its explained variance then stayed negative for 200k steps)
        kwargs = dict(features_extractor_class=SmallCNN, lstm_hidden_size=config.lstm_hidden,
                      enable_critic_lstm=True, shared_lstm=False, net_arch=dict(pi=[64], vf=[64]))
        return RecurrentPPO("CnnLstmPolicy", envs, policy_kwargs=kwargs, **common)
    extractor = SmallCNN if config.policy == "frame-stack-cnn" else FERNNFrameStackExtractor
    extractor_kwargs = {} if config.policy == "frame-stack-cnn" else dict(frames=config.frames,
                                                                          fernn_hidden=config.fernn_hidden,
                                                                          vmax=config.vmax)
    return PPO("CnnPolicy", envs, policy_kwargs=dict(features_extractor_class=extractor,
                                                     features_extractor_kwargs=extractor_kwargs,
                                                     net_arch=dict(pi=[64], vf=[64])), **common)


def load_model(config: RLConfig, path: Path, envs):
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO

    from fernn.agents.rl.policies import FERNNRecurrentPPO

    cls = {"fernn": FERNNRecurrentPPO, "cnn-lstm": RecurrentPPO}.get(config.policy, PPO)
    return cls.load(path, env=envs, device=config.device)
