"""FERNN in Stable-Baselines3: the recurrent policy, the lean buffer, recomputed states, predict,
save/load, vec envs, the frame-stack extractor, the CLI, and the buffer's memory bound."""

import csv
import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack
from typer.testing import CliRunner

import fernn.envs  # noqa: F401
from fernn import TranslationFlow
from fernn.agents.cli import app
from fernn.agents.rl.policies import (FERNNFrameStackExtractor, FERNNRecurrentPolicy, FERNNRecurrentPPO,
                                    LeanRecurrentRolloutBuffer, SmallCNN)

SMALL_WORLD = dict(world_size=32, window_size=12, num_digits=2, velocities=1, step_size=1)
POLICY = dict(fernn_hidden=2, vmax=1, features_dim=16)


def envs(n=2, cls=DummyVecEnv, steps=6):
    """Small MNISTWorldTrack envs; ``steps``: episode length (short, so episodes end inside rollouts)."""
    kwargs = {**SMALL_WORLD, "max_episode_steps": steps} if steps else SMALL_WORLD
    return make_vec_env("fernn.envs:MNISTWorldTrack-v0", n_envs=n, seed=0, vec_env_cls=cls, env_kwargs=kwargs)


def model(env, **kwargs):
    return FERNNRecurrentPPO("FERNNPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0,
                             policy_kwargs=POLICY | kwargs, device="cpu")


@pytest.mark.parametrize("shared", [True, False])
def test_recomputed_states_give_ratio_one_in_the_first_epoch(shared):
    """Episodes end inside the rollout (TimeLimit 6 < n_steps 8): the core must reset on episode_start,
    and the states recomputed from each env's start state must equal those seen while collecting."""
    ppo = model(envs(), shared_core=shared)
    ppo.learn(16)  # two rollouts: the second starts from a non-zero state
    callback = CallbackList([])
    callback.init_callback(ppo)
    ppo.collect_rollouts(ppo.env, callback, ppo.rollout_buffer, ppo.n_steps)
    for batch in ppo.rollout_buffer.get(8):
        with torch.no_grad():
            values, log_prob, _ = ppo.policy.evaluate_actions(batch.observations, batch.actions.long().flatten(),
                                                               batch.lstm_states, batch.episode_starts)
        torch.testing.assert_close(torch.exp(log_prob - batch.old_log_prob), torch.ones_like(log_prob),
                                   rtol=0, atol=1e-5)
        torch.testing.assert_close(values.flatten(), batch.old_values, rtol=0, atol=1e-5)


def test_predict_step_by_step_matches_one_batched_pass():
    ppo = model(envs(n=1, steps=None))
    env = gym.make("MNISTWorldTrack-v0", **SMALL_WORLD)
    obs, _ = env.reset(seed=3)
    frames, state, start = [], None, np.ones(1, bool)
    for _ in range(5):
        frames.append(obs.transpose(2, 0, 1))
        action, state = ppo.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, *_ = env.step(int(action))
        start = np.zeros(1, bool)
    batch = torch.as_tensor(np.stack(frames)).float()
    core = ppo.policy.lstm_actor
    features = ppo.policy.extract_features(batch)
    _, (h, _) = core.process(features, core.initial_state(1), torch.tensor([1.0, 0, 0, 0, 0]))
    torch.testing.assert_close(torch.as_tensor(state[0]), h, rtol=1e-5, atol=1e-6)


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    ppo = model(envs())
    ppo.learn(16)
    ppo.save(tmp_path / "fernn")
    loaded = FERNNRecurrentPPO.load(tmp_path / "fernn", device="cpu")
    obs = np.stack([ppo.env.observation_space.sample() for _ in range(2)])
    starts = np.ones(2, bool)
    a, state_a = ppo.predict(obs, episode_start=starts, deterministic=True)
    b, state_b = loaded.predict(obs, episode_start=starts, deterministic=True)
    assert np.array_equal(a, b) and np.allclose(state_a[0], state_b[0])


def test_policy_also_plugs_into_plain_recurrent_ppo():
    ppo = RecurrentPPO(FERNNRecurrentPolicy, envs(), n_steps=8, batch_size=8, n_epochs=1, policy_kwargs=POLICY,
                       device="cpu")
    ppo.learn(16)
    assert ppo.num_timesteps == 16


def test_subproc_vec_env():
    ppo = model(envs(cls=SubprocVecEnv, steps=None))
    before = [p.detach().clone() for p in ppo.policy.parameters()]
    ppo.learn(16)
    assert ppo.num_timesteps == 16
    assert any(not torch.equal(a, b) for a, b in zip(before, ppo.policy.parameters()))  # an update happened
    ppo.env.close()


def test_lean_buffer_memory_bound_at_the_issue_settings():
    """n_steps 128, 8 envs, V = 25, 16 hidden channels, 32x32: <= 64 MiB (the default would be ~6 GiB)."""
    env = make_vec_env("fernn.envs:MNISTWorldTrack-v0", n_envs=8, seed=0)
    ppo = FERNNRecurrentPPO("FERNNPolicy", env, n_steps=128, batch_size=256, policy_kwargs=dict(fernn_hidden=16,
                                                                                               vmax=2), device="cpu")
    buffer = ppo.rollout_buffer
    assert isinstance(buffer, LeanRecurrentRolloutBuffer)
    core = ppo.policy.lstm_actor
    assert core.hidden_size == 25 * 16 * 32 * 32
    buffer.add(np.zeros((8, 2, 32, 32)), np.zeros((8, 1)), np.zeros(8), np.ones(8), torch.zeros(8, 1),
               torch.zeros(8), lstm_states=ppo._last_lstm_states)
    assert buffer.nbytes() <= 64 * 2**20
    default = 4 * 128 * 8 * core.hidden_size * 4
    assert default > 6 * 2**30


def test_frame_stack_policies_and_small_cnn():
    stacked = VecFrameStack(envs(steps=None), 3)
    for extractor, kwargs in ((SmallCNN, {}), (FERNNFrameStackExtractor, dict(frames=3, fernn_hidden=2, vmax=1))):
        ppo = PPO("CnnPolicy", stacked, n_steps=8, batch_size=8, n_epochs=1, device="cpu",
                  policy_kwargs=dict(features_extractor_class=extractor, features_extractor_kwargs=kwargs))
        ppo.learn(16)
        assert ppo.num_timesteps == 16 and isinstance(ppo.policy.features_extractor, extractor)
    channels_first = gym.spaces.Box(0, 255, (6, 12, 12), np.uint8)  # 3 stacked frames of 2 channels
    with pytest.raises(ValueError, match="not a multiple of frames=4"):
        FERNNFrameStackExtractor(channels_first, frames=4)


def test_rl_cli_run_outputs_and_rollout(tmp_path):
    runner = CliRunner()
    args = ["train", "--env", "mnist-world-track", "--algo", "recurrent-ppo", "--policy", "fernn", "--n-envs", "2",
            "--n-steps", "8", "--batch-size", "8", "--hidden", "2", "--vmax", "1", "--eval-every", "16",
            "--eval-episodes", "1", "--out", str(tmp_path), "--name", "rl", "--device", "cpu", "--quiet"]
    result = runner.invoke(app, args + ["--timesteps", "32"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "rl"
    for name in ("config.json", "model.zip", "checkpoints/last.zip", "eval.csv", "eval.json", "learning_curve.png",
                 "results.json"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    assert set(results["bounds"]) == {"random", "oracle"} and results["final"]["timesteps"] == 32
    result = runner.invoke(app, ["rollout", str(run)])
    assert result.exit_code == 0 and (run / "episode.gif").is_file(), result.output
    before = [float(row["seconds"]) for row in csv.DictReader(open(run / "eval.csv"))]
    result = runner.invoke(app, args + ["--timesteps", "48", "--resume"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "results.json").read_text())["final"]["timesteps"] == 48
    after = [float(row["seconds"]) for row in csv.DictReader(open(run / "eval.csv"))]
    assert after[:len(before)] == before and after[-1] >= before[-1]  # the clock goes on across the resume
    for bad, message in ((["--policy", "lstm"], "policy must be one of"),
                         (["--algo", "ppo"], "runs with --algo recurrent-ppo"),
                         (["--env", "NoSuchEnv-v0"], "NoSuchEnv")):
        result = runner.invoke(app, ["train", "--algo", "recurrent-ppo", "--out", str(tmp_path), *bad])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output


def test_training_rewards_are_scaled_and_evaluation_returns_are_not():
    from fernn.agents.rl import RLConfig, evaluate_policy, make_vec_env

    config = RLConfig(policy="frame-stack-cnn", algo="ppo", n_envs=2, reward_scale=0.01)
    kwargs = dict(env_kwargs={**SMALL_WORLD, "max_episode_steps": 5})
    scaled, plain = make_vec_env(config, **kwargs), make_vec_env(dataclasses.replace(config, reward_scale=1.0), **kwargs)
    scaled.reset(), plain.reset()
    actions, total = np.array([1, 2]), np.zeros(2)
    for _ in range(5):
        _, reward_scaled, done, infos = scaled.step(actions)
        _, reward, _, _ = plain.step(actions)
        np.testing.assert_allclose(reward_scaled, 0.01 * reward, rtol=1e-6)
        total += reward
    assert done.all()  # SB3's Monitor (inside each env) logs the unscaled episode return
    np.testing.assert_allclose([info["episode"]["r"] for info in infos], total, rtol=1e-5)
    stay = lambda obs, state, start: (np.zeros(1, dtype=np.int64), state)  # noqa: E731
    assert evaluate_policy(stay, config, 2) == evaluate_policy(stay, dataclasses.replace(config, reward_scale=1.0), 2)
    with pytest.raises(ValueError, match="reward_scale must be a positive number"):
        RLConfig(reward_scale=0)


def test_self_motion_core_shifts_its_memory_by_minus_the_move():
    """Zero images with the action channels of ActionChannels and an identity recurrence: one step moves
    every velocity channel by v - (dx, dy)."""
    from fernn.agents.rl.policies import FERNNCore

    core = FERNNCore((3, 8, 8), hidden_channels=2, flow=TranslationFlow(1), out_dim=4, self_motion=True)
    with torch.no_grad():
        core.rnn.core.conv_rec.weight.zero_()
        core.rnn.core.conv_rec.weight[:, :, 1, 1] = torch.eye(2)
    state = torch.rand(1, 2, core.hidden_size)
    frames = torch.zeros(2, 3, 8, 8)
    moves = torch.tensor([[2, -1], [-3, 0]])
    frames[:, 1:] = ((moves + 128).float() / 255)[:, :, None, None]
    _, (h, _) = core.process(frames.flatten(1), (state, torch.zeros(1, 2, 1)), torch.zeros(2))
    before = state[0].view(2, 9, 2, 8, 8)
    after = h[0].view(2, 9, 2, 8, 8)
    for b in range(2):
        for v, (vx, vy) in enumerate(TranslationFlow(1).velocities.tolist()):
            expected = torch.roll(before[b, v], (vy - int(moves[b, 1]), vx - int(moves[b, 0])), (-2, -1))
            torch.testing.assert_close(after[b, v], expected)


def test_action_channels_wrapper_and_self_motion_policy_learn():
    from fernn.envs.wrappers import ActionChannels

    env = make_vec_env("fernn.envs:MNISTWorldTrack-v0", n_envs=2, seed=0, env_kwargs=SMALL_WORLD,
                       wrapper_class=ActionChannels)
    assert env.observation_space.shape == (12, 12, 4)
    obs = env.reset()
    assert (obs[..., 2:] == 128).all()
    ppo = model(env, self_motion=True)
    ppo.learn(16)
    assert ppo.num_timesteps == 16 and ppo.policy.lstm_actor.self_motion
    with pytest.raises(ValueError, match="ActionChannels takes image observations"):
        ActionChannels(gym.make("CartPole-v1"))


def test_rotation_flow_policy_trains():
    """Any fernn.Flow drives the policy: a RotationFlow core collects and updates (its parameters move)."""
    from fernn import RotationFlow

    ppo = FERNNRecurrentPPO("FERNNPolicy", envs(), n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu",
                            policy_kwargs=dict(fernn_hidden=2, features_dim=16,
                                               flow=RotationFlow([-10, 0, 10], group_order=4)))
    before = [p.detach().clone() for p in ppo.policy.parameters()]
    ppo.learn(16)
    assert ppo.num_timesteps == 16
    assert any(not torch.equal(a, b) for a, b in zip(before, ppo.policy.parameters()))


def test_self_motion_with_a_rotation_flow_is_refused():
    from fernn import RotationFlow
    from fernn.envs.wrappers import ActionChannels

    env = make_vec_env("fernn.envs:MNISTWorldTrack-v0", n_envs=1, seed=0, env_kwargs=SMALL_WORLD,
                       wrapper_class=ActionChannels)
    with pytest.raises(ValueError, match="TranslationFlow"):
        FERNNRecurrentPPO("FERNNPolicy", env, n_steps=8, batch_size=8, device="cpu",
                          policy_kwargs=dict(fernn_hidden=2, features_dim=16, self_motion=True,
                                             flow=RotationFlow([0, 90], group_order=4)))


def test_readouts_pool_or_keep_the_velocity_axis(tmp_path):
    """Pooled readouts cannot tell which velocity channel holds what (features invariant to permuting channels);
    ``readout="velocities"`` can. A velocities-readout policy learns and round-trips through save / load."""
    from fernn.agents.rl.policies import FERNNCore

    # constant over space, so that the flows leave every channel as it is and only the channels' order differs
    state = torch.rand(2, 9, 2, 1, 1).expand(2, 9, 2, 8, 8)
    swapped = state[:, torch.randperm(9, generator=torch.Generator().manual_seed(0))]
    state, swapped = state.reshape(1, 2, -1), swapped.reshape(1, 2, -1)
    frames, starts = torch.zeros(2, 2, 8, 8).flatten(1), torch.zeros(2)
    for readout, invariant in (("max", True), ("mean", True), ("velocities", False)):
        core = FERNNCore((2, 8, 8), hidden_channels=2, flow=TranslationFlow(1), out_dim=4, readout=readout)
        with torch.no_grad():
            core.rnn.core.conv_rec.weight.zero_()
            core.rnn.core.conv_rec.weight[:, :, 1, 1] = torch.eye(2)  # the state only flows: no mixing, no drive
            latent, _ = core.process(frames, (state, torch.zeros(1, 2, 1)), starts)
            latent_swapped, _ = core.process(frames, (swapped, torch.zeros(1, 2, 1)), starts)
        core_in = core.readout.convs[0].in_channels
        assert core_in == (18 if readout == "velocities" else 2)
        assert torch.allclose(latent, latent_swapped, atol=1e-6) == invariant, readout
    ppo = model(envs(), readout="velocities")
    ppo.learn(16)
    ppo.save(tmp_path / "fernn")
    loaded = FERNNRecurrentPPO.load(tmp_path / "fernn", device="cpu")
    assert loaded.policy.lstm_actor.readout_mode == "velocities"
    obs = np.stack([ppo.env.observation_space.sample() for _ in range(2)])
    a, _ = ppo.predict(obs, episode_start=np.ones(2, bool), deterministic=True)
    b, _ = loaded.predict(obs, episode_start=np.ones(2, bool), deterministic=True)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="readout must be one of max, mean, velocities; got 'sum'"):
        FERNNCore((2, 8, 8), readout="sum")
    for args, message in ((["--policy", "fernn", "--readout", "sum"], "readout must be one of max, mean, velocities"),
                          (["--policy", "cnn-lstm", "--readout", "velocities"], "readout applies to --policy fernn")):
        result = CliRunner().invoke(app, ["train", "--env", "mnist-world-track", "--algo", "recurrent-ppo", *args,
                                          "--out", str(tmp_path / "runs")])
        assert result.exit_code == 2 and message in result.output, result.output


class _ImageEnv(gym.Env):
    """A tiny env with the observation space under test: a bright pixel that drifts right."""

    def __init__(self, space):
        self.observation_space, self.action_space = space, gym.spaces.Discrete(2)
        self.t = 0

    def _obs(self):
        obs = np.zeros(self.observation_space.shape, self.observation_space.dtype)
        obs.flat[self.t % obs.size] = self.observation_space.high.flat[0]
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), float(action), self.t >= 5, False, {}


IMAGE_SPACES = {
    "uint8 channels-last": (gym.spaces.Box(0, 255, (12, 12, 1), np.uint8), {}, (1, 12, 12)),
    "uint8 channels-first": (gym.spaces.Box(0, 255, (2, 12, 12), np.uint8), {}, (2, 12, 12)),
    "float channels-last": (gym.spaces.Box(0, 1, (12, 12, 1), np.float32), {"normalize_images": False}, (1, 12, 12)),
    "float channels-first": (gym.spaces.Box(0, 1, (1, 12, 12), np.float32), {"normalize_images": False}, (1, 12, 12)),
}


@pytest.mark.parametrize("name", list(IMAGE_SPACES))
def test_image_spaces_are_read_the_way_sb3_reads_them(name):
    space, kwargs, shape = IMAGE_SPACES[name]
    env = DummyVecEnv([lambda: _ImageEnv(space)])
    ppo = FERNNRecurrentPPO("FERNNPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu",
                            policy_kwargs=dict(fernn_hidden=2, vmax=1, features_dim=8, **kwargs))
    assert ppo.policy.lstm_actor.observation_shape == shape
    ppo.learn(8)
    plain = RecurrentPPO("CnnLstmPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu",
                         policy_kwargs=dict(features_extractor_class=SmallCNN, lstm_hidden_size=8,
                                            features_extractor_kwargs=dict(normalized_image=bool(kwargs)), **kwargs))
    plain.learn(8)


def test_image_spaces_that_are_not_accepted_say_what_is():
    float_space = gym.spaces.Box(0, 1, (12, 12, 1), np.float32)
    with pytest.raises(ValueError, match=r"FERNNRecurrentPolicy takes image observations.*normalize_images=False"):
        FERNNRecurrentPPO("FERNNPolicy", DummyVecEnv([lambda: _ImageEnv(float_space)]), device="cpu")
    flat = gym.spaces.Box(0, 255, (12, 12), np.uint8)
    with pytest.raises(ValueError, match=r"2-D .*keep_dim=True"):
        FERNNRecurrentPPO("FERNNPolicy", DummyVecEnv([lambda: _ImageEnv(flat)]), device="cpu")
    with pytest.raises(ValueError, match=r"takes image observations.*render_mode='rgb_array'"):
        FERNNRecurrentPPO("FERNNPolicy", "CartPole-v1", device="cpu")


def test_the_sb3_contrib_members_this_module_relies_on_exist():
    """FERNNRecurrentPolicy and FERNNRecurrentPPO replace these members after sb3-contrib's constructors; a release
    that renames one must fail here, loudly, not train a policy that silently ignores the FERNN memory."""
    from fernn.agents.rl.policies import SB3_CONTRIB_MEMBERS

    plain = RecurrentPPO("CnnLstmPolicy", envs(), n_steps=8, batch_size=8, device="cpu",
                         policy_kwargs=dict(features_extractor_class=SmallCNN, lstm_hidden_size=8))
    for owner, names in SB3_CONTRIB_MEMBERS.items():
        instance = plain.policy if owner is not RecurrentPPO else plain
        missing = [name for name in names if name not in vars(instance) and not hasattr(instance, name)]
        assert not missing, f"sb3-contrib's {owner.__name__} no longer has {missing}: update fernn.agents.rl.policies"
    ppo = model(envs())
    assert isinstance(ppo.rollout_buffer, LeanRecurrentRolloutBuffer) and ppo.policy.lstm_critic is None
    assert ppo.policy.critic is None and ppo.policy.lstm_output_dim == 16
    assert ppo._last_lstm_states.pi[0].shape == (1, 2, ppo.policy.lstm_actor.hidden_size)


MOVES = [[0, 0], [0, -2], [2, -2], [2, 0], [2, 2], [0, 2], [-2, 2], [-2, 0], [-2, -2], [3, 0]]


def moving_target(velocity, end=(6, 6), steps=6, size=12, self_motion_moves=None):
    """Frames ``(T, C, size, size)`` of a 2x2 target (both channels) moving at ``velocity`` px/step on a torus and
    ending at ``end``; with ``self_motion_moves`` the window moves too (the target's relative motion is
    ``velocity - move``) and two action channels hold the moves, as ActionChannels writes them."""
    moves = np.zeros((steps, 2), np.int64) if self_motion_moves is None else np.asarray(self_motion_moves)
    frames = np.zeros((steps, 2 + (self_motion_moves is not None) * 2, size, size), np.float32)
    position = np.array(end, np.int64)
    for t in reversed(range(steps)):
        x, y = position % size
        frames[t, :2, [y, y, (y + 1) % size, (y + 1) % size], [x, (x + 1) % size, x, (x + 1) % size]] = 255
        if self_motion_moves is not None:
            frames[t, 2:] = (moves[t] + 128)[:, None, None]
        position = position - np.asarray(velocity) + (moves[t] if t > 0 else 0)
    return torch.as_tensor(frames)


@pytest.mark.parametrize("self_motion", [False, True])
def test_the_equivariant_actor_moves_its_logits_with_the_targets_velocity(self_motion):
    """The same target moving at u and at u + nu, both ending at the same place: the logit of move m after the
    first equals the logit of move m + nu after the second, up to a constant, exactly (float32), for untrained and
    trained weights; the pooled actor fails the same test."""
    channels = 4 if self_motion else 2
    space = gym.spaces.Box(0, 255, (channels, 12, 12), np.uint8)
    walk = [[0, 0], [2, 0], [2, 2], [0, 0], [-2, 0], [0, 2]] if self_motion else None

    def logits(policy, velocity):
        frames = moving_target(velocity, self_motion_moves=walk)
        memory = policy.lstm_actor
        starts = torch.zeros(len(frames))
        return policy.action_logits(frames, memory.initial_state(1), starts)[-1]

    def deviation(policy, u, nu):
        """How far logit'(m + nu) - logit(m) is from one constant over the moves m with m and m + nu in the table."""
        first, second = logits(policy, u), logits(policy, [u[0] + nu[0], u[1] + nu[1]])
        pairs = [(MOVES.index(m), MOVES.index([m[0] + nu[0], m[1] + nu[1]])) for m in MOVES[:9]
                 if [m[0] + nu[0], m[1] + nu[1]] in MOVES[:9]]
        differences = torch.stack([second[j] - first[i] for i, j in pairs])
        return float((differences - differences[0]).abs().max()), float(first.std())

    for actor in ("equivariant", "pooled"):
        torch.manual_seed(0)
        policy = FERNNRecurrentPolicy(space, gym.spaces.Discrete(len(MOVES)), lambda _: 1e-3, fernn_hidden=2, vmax=2,
                                      features_dim=16, actor=actor, moves=MOVES, self_motion=self_motion)
        for trained in (False, True):
            if trained:  # a few gradient steps on random targets: any weights obey the law
                for _ in range(3):
                    loss = policy.action_logits(moving_target([2, 0], self_motion_moves=walk),
                                                policy.lstm_actor.initial_state(1), torch.zeros(6)).pow(2).mean()
                    policy.optimizer.zero_grad()
                    (-loss).backward()
                    policy.optimizer.step()
            with torch.no_grad():
                error, spread = deviation(policy, [0, 2], [2, 0])
                error_diagonal, _ = deviation(policy, [-2, 0], [2, -2])
            if actor == "equivariant":
                assert error < 1e-5 and error_diagonal < 1e-5, (error, error_diagonal)
            else:
                assert error > 1e-3 * max(spread, 1e-3), (error, spread)


def test_the_equivariant_actor_needs_moves_that_are_velocities():
    space = gym.spaces.Box(0, 255, (2, 12, 12), np.uint8)
    with pytest.raises(ValueError, match="no action's move"):
        FERNNRecurrentPolicy(space, gym.spaces.Discrete(2), lambda _: 1e-3, vmax=1, actor="equivariant",
                             moves=[[5, 0], [0, 5]])
    with pytest.raises(ValueError, match="action_moves"):
        FERNNRecurrentPolicy(space, gym.spaces.Discrete(2), lambda _: 1e-3, vmax=1, actor="equivariant")
    with pytest.raises(ValueError, match="actor must be one of pooled, equivariant"):
        FERNNRecurrentPolicy(space, gym.spaces.Discrete(2), lambda _: 1e-3, actor="shared")
    cartpole = make_vec_env("CartPole-v1", n_envs=1)
    from fernn.agents.rl.policies import env_moves

    with pytest.raises(ValueError, match="no action_moves"):
        env_moves(cartpole)
    ppo = model(envs(), actor="equivariant", vmax=1)  # the env's table: MNIST World's moves of step_size 1
    assert ppo.policy.moves == envs().env_method("action_moves", indices=[0])[0].tolist()
    ppo.learn(16)


def test_self_motion_moves_are_decoded_with_the_image_scaling():
    """With normalize_images=False the action channels arrive unscaled: the memory decodes them as such."""
    from fernn.agents.rl.memory import FERNNMemory

    frames = torch.zeros(1, 3, 8, 8)
    frames[:, 1:] = torch.tensor([130.0, 125.0])[None, :, None, None]  # moves (2, -3), not scaled to [0, 1]
    memory = FERNNMemory((3, 8, 8), hidden_channels=2, flow=TranslationFlow(1), out_dim=4, self_motion=True,
                         move_scale=1.0)
    with torch.no_grad():
        memory.rnn.core.conv_rec.weight.zero_()
        memory.rnn.core.conv_rec.weight[:, :, 1, 1] = torch.eye(2)
    state = torch.rand(1, 1, memory.hidden_size)
    _, (h, _) = memory.process(frames.flatten(1), (state, torch.zeros(1, 1, 1)), torch.zeros(1))
    before, after = state[0].view(9, 2, 8, 8), h[0].view(9, 2, 8, 8)
    torch.testing.assert_close(after[4], torch.roll(before[4], (3, -2), (-2, -1)))  # channel (0, 0): moved by -(2, -3)


CONSTRUCT_UNDER_A_CAP = """
import resource, sys, warnings
warnings.filterwarnings("ignore")
from stable_baselines3.common.env_util import make_vec_env
from fernn.agents.rl.policies import FERNNRecurrentPPO
envs = make_vec_env("fernn.envs:MNISTWorldTrack-v0", n_envs=8, seed=0)
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
ppo = FERNNRecurrentPPO("FERNNPolicy", envs, n_steps=128, batch_size=128, device="cpu",
                        policy_kwargs=dict(fernn_hidden=16, vmax=2))
state = ppo.policy.lstm_actor.hidden_size
print(state, ppo.rollout_buffer.nbytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_construction_never_allocates_a_state_per_step():
    """At the default sizes sb3-contrib's buffer would hold 128 steps x 8 envs x the flat state (25 velocities x 16
    channels x 32 x 32 = 409,600 numbers), four arrays: 6.25 GiB. Built under an address-space cap of 1 GiB more
    than the process had before, the FERNN model is constructed, and its buffer holds the transitions and one
    start state per env."""
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", "import resource, sys; "
                            "from stable_baselines3.common.env_util import make_vec_env; import fernn.agents.rl.policies; "
                            "print(open('/proc/self/status').read().split('VmPeak:')[1].split()[0])"],
                           capture_output=True, text=True, check=True)
    cap = int(probe.stdout.split()[-1]) * 1024 + (1 << 30)  # what imports reserve, and 1 GiB to build the model
    done = subprocess.run([sys.executable, "-c", CONSTRUCT_UNDER_A_CAP, str(cap)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    state, buffer_bytes, _ = map(int, done.stdout.split())
    assert state == 25 * 16 * 32 * 32
    assert buffer_bytes < 4 * 128 * 8 * state * 4 / 20  # the transitions and start states, not a state per step


def test_vectorised_evaluation_returns_what_one_episode_at_a_time_returns():
    """Episodes stepped side by side (a full wave of 3, then a wave of 2) score the same seeded episodes, and the
    same returns, as one env stepping them in turn."""
    from fernn.agents.rl import RLConfig, evaluate_policy, make_vec_env

    config = RLConfig(env="MNISTWorldTrack-v0", env_kwargs={**SMALL_WORLD, "max_episode_steps": 6}, n_envs=2,
                      fernn_hidden=2, vmax=1, device="cpu")
    ppo = FERNNRecurrentPPO("FERNNPolicy", make_vec_env(config), n_steps=8, batch_size=8, seed=0, device="cpu",
                            policy_kwargs=POLICY)
    act = lambda o, s, e: ppo.predict(o, state=s, episode_start=e, deterministic=True)  # noqa: E731
    one_at_a_time = evaluate_policy(act, config, 5, parallel=1)
    assert evaluate_policy(act, config, 5, parallel=3) == one_at_a_time
    assert evaluate_policy(act, config, 5, parallel=10) == one_at_a_time and len(one_at_a_time) == 5
