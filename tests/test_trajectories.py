"""Bring your own environment: collect episodes from any Gymnasium env (an id, module:Id, an env, a vector env),
store them as data, and train and evaluate the world model or the predictor on them."""

import json
import textwrap

import gymnasium as gym
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import fernn.envs  # noqa: F401
from fernn.agents import TrainConfig, train
from fernn.agents.cli import app
from fernn.envs import TrajectoryDataset, TrajectoryFileError, collect_episodes

runner = CliRunner()
SMALL_WORLD = dict(world_size=40, window_size=20, num_digits=2, step_size=3)
TINY = dict(vmax=1, hidden=2, context=3, predict=3, epochs=1, steps_per_epoch=2, batch_size=2, val_batches=1,
            eval_sequences=2, decoder_layers=1, device="cpu")


class Drift(gym.Env):
    """A user's env: a bright square drifting across a (12, 16) frame, episodes of random length 4-9."""

    metadata = {"render_modes": []}

    def __init__(self, channels: int = 1, two_d: bool = False, dtype=np.uint8):
        shape = (12, 16) if two_d else (12, 16, channels)
        self.observation_space = gym.spaces.Box(0, 255 if dtype == np.uint8 else 1, shape, dtype)
        self.action_space = gym.spaces.Discrete(3)

    def _obs(self):
        obs = np.zeros(self.observation_space.shape, self.observation_space.dtype)
        obs[4:8, self.x % 16:self.x % 16 + 3] = self.observation_space.high.flat[0]
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t, self.length = 0, 0, int(self.np_random.integers(4, 10))
        return self._obs(), {"shift": (0, 0)}

    def step(self, action):
        self.x, self.t = self.x + int(action), self.t + 1
        return self._obs(), float(action == 1), self.t >= self.length, False, {"shift": (int(action), 0)}


def test_collect_from_an_id_gives_episodes_with_moves_and_round_trips(tmp_path):
    data = collect_episodes("mnist-world", 4, max_steps=7, seed=0, env_kwargs=SMALL_WORLD)
    assert list(data.lengths) == [7] * 4 and data.has_moves and data.observation_shape == (20, 20, 1)
    assert data.meta["env_id"] == "mnist-world" and data.meta["env_kwargs"] == SMALL_WORLD
    path = data.save(tmp_path / "world.npz")
    loaded = TrajectoryDataset.load(path, window=5)
    for index in range(4):
        for key, value in data.episode(index).items():
            assert np.array_equal(loaded.episode(index)[key], value), key
    batch = loaded.sample_batch(3)
    assert batch["frames"].shape == (3, 5, 1, 20, 20) and batch["moves"].shape == (3, 5, 2)
    assert batch["actions"].shape == (3, 5)  # the env's Discrete actions, apart from the window's moves
    assert torch.equal(batch["positions"], batch["moves"].cumsum(1))
    assert len(loaded) == 4 * 4 and loaded[0]["frames"].shape == (5, 1, 20, 20)


def test_ragged_episodes_vector_envs_policies_and_moves():
    data = collect_episodes(Drift(), 6, seed=1, policy=lambda obs: 1, moves="shift")
    assert len(set(data.lengths.tolist())) > 1 and data.has_moves  # ragged
    assert all((data.episode(i)["moves"][1:, 0] == 1).all() for i in range(6))
    vector = gym.vector.SyncVectorEnv([Drift for _ in range(3)])
    batched = collect_episodes(vector, 7, seed=2, moves=lambda action, info: (int(action), 0))
    assert len(batched.lengths) == 7 and batched.has_moves
    plain = collect_episodes(Drift(), 3, seed=0)
    assert not plain.has_moves  # no info["action"] and no moves asked for


def test_collection_and_loading_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match=r"moves='nope' names an info key the env does not report.*shift"):
        collect_episodes(Drift(), 2, moves="nope")
    with pytest.raises(ValueError, match="keep_dim=True"):
        collect_episodes(Drift(two_d=True), 2)
    with pytest.raises(ValueError, match="takes image observations.*--pixels"):
        collect_episodes("CartPole-v1", 2)
    with pytest.raises(ValueError, match="unknown env"):
        collect_episodes("NoSuchEnv-v9", 2)
    data = collect_episodes(Drift(), 3, seed=0)
    with pytest.raises(ValueError, match="no episode has 40 observations"):
        data.windows(40)
    path = data.save(tmp_path / "drift.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(TrajectoryFileError, match="truncated.npz"):
        TrajectoryDataset.load(truncated).sample_batch(2)
    arrays = dict(np.load(path, allow_pickle=False))
    np.savez(tmp_path / "old.npz", **{**arrays, "version": np.array(99)})
    with pytest.raises(TrajectoryFileError, match="version 99"):
        TrajectoryDataset.load(tmp_path / "old.npz")


class Plant:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_pickled_object_in_a_trajectory_file_is_never_unpickled(tmp_path):
    data = collect_episodes(Drift(), 2, seed=0)
    arrays = dict(np.load(data.save(tmp_path / "ok.npz"), allow_pickle=False))
    marker = tmp_path / "marker"
    np.savez(tmp_path / "evil.npz", **{**arrays, "meta": np.array([Plant(marker)], dtype=object)})
    with pytest.raises(TrajectoryFileError, match="evil.npz"):
        TrajectoryDataset.load(tmp_path / "evil.npz")
    assert not marker.exists()


def test_the_one_trainer_trains_the_world_model_and_the_predictor_on_collected_data(tmp_path):
    collect_episodes("mnist-world", 5, max_steps=9, seed=0, env_kwargs=SMALL_WORLD).save(tmp_path / "world.npz")
    result = train(TrainConfig(data=str(tmp_path / "world.npz"), model="fernn", world_size=24, out=str(tmp_path),
                               name="wm", **TINY))
    assert result.step == 2 and "mse_out_of_view" in result.results["test"]
    assert json.loads((tmp_path / "wm" / "config.json").read_text())["env"] == "trajectories"
    collect_episodes(Drift(), 6, seed=0).save(tmp_path / "drift.npz")
    for model in ("fernn", "grnn-plus"):
        result = train(TrainConfig(data=str(tmp_path / "drift.npz"), model=model, out=str(tmp_path), name=model, **TINY))
        assert result.step == 2 and "velocity_generalization" not in result.results
    with pytest.raises(ValueError, match="conditions on the observer's moves"):
        train(TrainConfig(data=str(tmp_path / "drift.npz"), model="action-concat", out=str(tmp_path), name="ac", **TINY))
    assert not (tmp_path / "ac").exists()


def test_cli_collect_train_eval_rollout_and_any_env_id(tmp_path, monkeypatch):
    module = tmp_path / "user_envs.py"
    module.write_text(textwrap.dedent("""
        import gymnasium as gym
        from tests_drift import Drift
        gym.register("UserDrift-v0", entry_point=Drift)
    """))
    (tmp_path / "tests_drift.py").write_text("from test_trajectories import Drift\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    out = tmp_path / "drift.npz"
    result = runner.invoke(app, ["collect", "--env", "user_envs:UserDrift-v0", "--episodes", "6", "--out", str(out),
                                 "--moves", "shift", "--quiet"])
    assert result.exit_code == 0 and out.is_file(), result.output
    flags = ["--vmax", "1", "--hidden", "2", "--context", "3", "--predict", "2", "--epochs", "1", "--steps-per-epoch",
             "2", "--batch-size", "2", "--val-batches", "1", "--eval-sequences", "2", "--decoder-layers", "1",
             "--device", "cpu", "--quiet", "--out", str(tmp_path / "runs")]
    result = runner.invoke(app, ["train", "--data", str(out), "--model", "fernn", "--world-size", "24", *flags])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "drift-fernn"  # a data run is named after its file
    for command in (["eval", str(run), "--what", "test"], ["rollout", str(run)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
    assert (run / "rollout_0.gif").is_file()
    result = runner.invoke(app, ["train", "--env", "user_envs:UserDrift-v0", "--algo", "recurrent-ppo", "--policy",
                                 "cnn-lstm", "--timesteps", "32", "--n-envs", "2", "--n-steps", "8", "--batch-size", "8",
                                 "--eval-every", "16", "--eval-episodes", "1", "--device", "cpu", "--quiet", "--out",
                                 str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    for bad, message in ((["--env", "nope:X-v0"], "cannot import module"), (["--env", "mnist-world", "--env-kwargs",
                                                                              "[1]"], "JSON object"),
                         (["--env", "CartPole-v1"], "takes image observations")):
        result = runner.invoke(app, ["collect", *bad, "--out", str(tmp_path / "x.npz"), "--quiet"])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "x.npz").exists()


def test_pixel_cartpole_trains_a_fernn_policy_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    result = runner.invoke(app, ["train", "--env", "CartPole-v1", "--pixels", "--frame-size", "16", "--grayscale",
                                 "--algo", "recurrent-ppo", "--policy", "fernn", "--timesteps", "32", "--n-envs", "2",
                                 "--n-steps", "8", "--batch-size", "16", "--hidden", "2", "--vmax", "1", "--eval-every",
                                 "16", "--eval-episodes", "1", "--device", "cpu", "--quiet", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "cartpole-fernn-s0" / "config.json").read_text())
    assert config["pixels"] and config["frame_size"] == 16


def test_a_saved_rl_policy_collects_through_the_cli(tmp_path):
    """--policy RUN_DIR: the run's policy (loaded without unpickling) acts, its recurrent state reset per episode."""
    kwargs = json.dumps(SMALL_WORLD)
    result = runner.invoke(app, ["train", "--env", "mnist-world-track", "--env-kwargs", kwargs, "--algo",
                                 "recurrent-ppo", "--policy", "cnn-lstm", "--timesteps", "16", "--n-envs", "2",
                                 "--n-steps", "8", "--batch-size", "8", "--eval-every", "16", "--eval-episodes", "1",
                                 "--device", "cpu", "--quiet", "--out", str(tmp_path), "--name", "agent"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["collect", "--env", "mnist-world-track", "--env-kwargs", kwargs, "--episodes", "3",
                                 "--max-steps", "5", "--policy", str(tmp_path / "agent"), "--out",
                                 str(tmp_path / "agent.npz"), "--quiet"])
    assert result.exit_code == 0, result.output
    loaded = TrajectoryDataset.load(tmp_path / "agent.npz")
    assert loaded.meta["policy"] == str(tmp_path / "agent") and list(loaded.lengths) == [5, 5, 5]
    result = runner.invoke(app, ["collect", "--env", "mnist-world", "--episodes", "1", "--policy",
                                 str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.npz"), "--quiet"])
    assert result.exit_code == 2 and "--policy must be 'random' or an RL run directory" in result.output


def test_a_vector_env_starts_a_fresh_episode_after_one_it_cut():
    """collect cuts episodes at max_steps; in a native vector env the cut env is reset (Gymnasium's reset_mask), so
    every episode starts from a reset, and none is shortened by the env's own time limit running on underneath (8
    envs x 10 episodes of 60 steps each pass the block world's 500-step limit)."""
    import gymnasium as gym

    from fernn.envs import collect_episodes

    vector = gym.make_vec("DynamicBlockWorld-v0", num_envs=8, vectorization_mode="vector_entry_point", obs_size=16,
                          room_size=6)
    data = collect_episodes(vector, 80, max_steps=60, policy="biased-walk", seed=0)
    assert set(data.lengths.tolist()) == {60}
    first_positions = [tuple(data.field("truth_agent_pos", i)[0]) for i in range(80)]
    last_positions = [tuple(data.field("truth_agent_pos", i)[-1]) for i in range(80)]
    # an episode that continued the previous one would start where it stopped
    following = [first_positions[i + 8] == last_positions[i] for i in range(72)]
    assert sum(following) < 72 // 2
