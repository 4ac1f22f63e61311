"""The SB3 model of an RL run: built from its config, or loaded from a saved run."""

from __future__ import annotations

from pathlib import Path

from fernn.agents.rl.config import RLConfig


def make_model(config: RLConfig, envs, tensorboard: str | None = None):
    """The SB3 model of ``config`` on ``envs``."""
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO

    from fernn.agents.rl.policies import FERNNFrameStackExtractor, FERNNRecurrentPPO, SmallCNN

    check_memory(config, envs.observation_space)
    common = dict(n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs,
                  learning_rate=config.lr, ent_coef=config.ent_coef, seed=config.seed, device=config.device,
                  tensorboard_log=tensorboard, verbose=0)
    if config.policy == "fernn":
        return FERNNRecurrentPPO("FERNNPolicy", envs, policy_kwargs=dict(fernn_hidden=config.fernn_hidden,
                                                                          vmax=config.vmax,
                                                                          self_motion=config.self_motion,
                                                                          readout=config.readout,
                                                                          actor=config.actor,
                                                                          relaxed=config.relaxed,
                                                                          relax_alpha=config.relax_alpha), **common)
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


def check_memory(config: RLConfig, space) -> None:
    """Refuse, with the figure, a FERNN policy whose states would not fit: a minibatch of whole envs recomputes
    ``n_steps`` states of ``V x C x H x W`` floats each with gradients (about three copies per state)."""
    from fernn.budget import check_fits
    from fernn.envs.image_spaces import read_image_space
    from fernn.flows import grid_velocities

    if not config.policy.endswith("fernn"):
        return
    layout = read_image_space(space, f"the {config.policy} policy", floats=True)  # the policy reports a bad space
    pixels = layout.height * layout.width
    velocities = grid_velocities(config.vmax)
    envs_per_batch = max(1, config.batch_size // config.n_steps)
    steps = config.n_steps if config.policy == "fernn" else config.frames
    states = velocities * config.fernn_hidden * pixels * steps * envs_per_batch
    check_fits(4.0 * 3 * states, f"the FERNN states of one PPO minibatch ({envs_per_batch} env(s) x {steps} steps x "
               f"{velocities} velocities x {config.fernn_hidden} channels x {pixels:,} pixels, with gradients)",
               "lower --vmax, --hidden, --batch-size or --n-steps", config.device if config.device != "auto" else None)


def load_model(config: RLConfig, path: Path, envs, tensorboard: str | None = None):
    """Load a model this project saved (SB3's ``.zip``) without unpickling anything.

    SB3's own ``load`` deserialises cloudpickled objects stored in the archive's ``data`` entry, so opening an
    archive someone else made could run their code. This builds the model from ``config`` instead, then reads
    the weights (``policy.pth``, ``policy.optimizer.pth``) with ``torch.load(weights_only=True)`` and the plain
    counters (``num_timesteps``, ``_n_updates``) from the JSON ``data``; nothing else in the archive is read.

    Raises:
        fernn.agents.runs.RunFileError: the archive is damaged, lacks the weights, or holds objects other than
            tensors and plain data where the weights should be.
    """
    import io
    import json
    import pickle
    import zipfile

    import torch

    from fernn.agents.runs import RunFileError

    model = make_model(config, envs, tensorboard)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            data = json.loads(archive.read("data"))
            policy = torch.load(io.BytesIO(archive.read("policy.pth")), map_location=model.device, weights_only=True)
            optimizer = torch.load(io.BytesIO(archive.read("policy.optimizer.pth")), map_location=model.device,
                                   weights_only=True) if "policy.optimizer.pth" in names else None
        model.policy.load_state_dict(policy)
        if optimizer is not None:
            model.policy.optimizer.load_state_dict(optimizer)
        model.num_timesteps = int(data.get("num_timesteps", 0))
        model._n_updates = int(data.get("_n_updates", 0))
    except pickle.UnpicklingError as error:
        raise RunFileError(f"{path} holds objects other than tensors and plain data where the policy's weights "
                           f"should be; they are not loaded (loading them could run code): "
                           f"{str(error).splitlines()[0]}") from error
    except (zipfile.BadZipFile, KeyError, ValueError, RuntimeError, EOFError, OSError) as error:
        raise RunFileError(f"{path} is not a readable model archive of this run ({type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else 'damaged'}); resume from another "
                           "checkpoint or train the run again with --overwrite") from error
    return model


def saved_timesteps(path: Path) -> int:
    """The environment steps recorded in a saved model archive (its JSON ``data``), read as data."""
    import json
    import zipfile

    from fernn.agents.runs import RunFileError

    try:
        with zipfile.ZipFile(path) as archive:
            return int(json.loads(archive.read("data")).get("num_timesteps", 0))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise RunFileError(f"{path} is not a readable model archive of this run ({error}); resume from another "
                           "checkpoint or train the run again with --overwrite") from error


def load_policy(run_dir: Path, *, checkpoint: str = "final", device: str = "cpu", env_kwargs: dict | None = None,
                n_envs: int = 1, render: bool = False):
    """The saved policy of an RL run (weights only: nothing is unpickled) on fresh envs of its own settings.

    Args:
        run_dir: the run directory.
        checkpoint: ``"final"`` (``model.zip``) or ``"last"`` (``checkpoints/last.zip``, the resume point).
        device: where the policy runs.
        env_kwargs: ``gym.make`` keyword arguments laid over the run's own.
        n_envs: envs of the returned VecEnv (unscaled rewards).
        render: make the envs with ``render_mode="rgb_array"``.

    Returns:
        ``(model, envs, config)``; close ``envs`` when done.

    Raises:
        FileNotFoundError: no such run or checkpoint. ValueError: not an RL run, or a config.json that is not one.
        fernn.agents.runs.RunFileError: a damaged archive.
    """
    import dataclasses

    from fernn.agents.rl.envs import make_vec_env
    from fernn.agents.runs import RunDir

    run = RunDir(run_dir)
    if run.kind() != "rl":
        raise ValueError(f"{run_dir} is not an RL run (its run.json says {run.kind()!r}); a policy comes from a run of "
                         "fernn-rl train --algo ...")
    if checkpoint not in ("final", "last"):
        raise ValueError(f"checkpoint must be final (model.zip) or last (checkpoints/last.zip); got {checkpoint!r}")
    config = dataclasses.replace(RLConfig.from_dict(run.read_config(), str(run.config_path)), device=device)
    config = dataclasses.replace(config.with_env_kwargs(env_kwargs), n_envs=n_envs, vec_env="dummy", reward_scale=1.0)
    path = run.path / "model.zip" if checkpoint == "final" else run.checkpoints / "last.zip"
    if not path.is_file():
        raise FileNotFoundError(f"{run.path} has no {path.relative_to(run.path)} yet; finish (or --resume) the run "
                                "first" + (", or use checkpoint last" if checkpoint == "final" else ""))
    envs = make_vec_env(config, env_kwargs={"render_mode": "rgb_array"} if render else None)
    return load_model(config, path, envs), envs, config
