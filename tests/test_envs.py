"""The Gymnasium suite: registration, checkers, determinism, fresh arrays, vectorisation, SB3
compatibility, rendering, the tracking bounds, and bad input."""

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import fernn.envs  # noqa: F401  (registers the ids)
from fernn.envs import ENV_IDS, DataMissingError

MNIST_IDS = ["FlowingMNIST-v0", "RotatingMNIST-v0", "MNISTWorld-v0", "MNISTWorldStatic-v0", "MNISTWorldTrack-v0",
             "MNISTWorldTrackOccluded-v0"]
BLOCK_IDS = ["DynamicBlockWorld-v0", "DynamicBlockWorldStatic-v0", "DynamicBlockWorldTextured-v0",
             "DynamicBlockWorldFindRed-v0"]
SCENE_IDS = MNIST_IDS + BLOCK_IDS


@pytest.fixture(params=SCENE_IDS + ["KTHCamera-v0"])
def env_spec(request, kth_root):
    """``(id, kwargs)`` for every registered id (KTH on the miniature data set)."""
    kwargs = {"data_dir": str(kth_root)} if request.param == "KTHCamera-v0" else {}
    return request.param, kwargs


def rollout(env, seed, steps):
    """Observations, rewards and dones of ``steps`` steps with actions drawn from a seeded space."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    record = [obs.copy()]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        record += [obs.copy(), reward, terminated, truncated]
        if terminated or truncated:
            obs, _ = env.reset()
            record.append(obs.copy())
    return record


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_every_id_is_registered_and_named_by_the_cli():
    assert set(SCENE_IDS + ["KTHCamera-v0"]) <= set(gym.registry)
    assert set(ENV_IDS.values()) == set(SCENE_IDS + ["KTHCamera-v0"])
    assert set(ENV_IDS.values()) <= set(gym.registry) and ENV_IDS["kth-camera"] == "KTHCamera-v0"


def test_module_prefixed_id_works_without_importing_and_pygame_is_not_imported():
    code = ("import sys, gymnasium as gym; env = gym.make('fernn.envs:FlowingMNIST-v0'); env.reset(seed=0); "
            "assert 'pygame' not in sys.modules, 'pygame imported at import time'; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_gymnasium_checker_passes_without_warnings(env_spec):
    env_id, kwargs = env_spec
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_sb3_checker_passes_without_warnings(env_spec):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env_id, kwargs = env_spec
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Explained: SB3's default CnnPolicy (NatureCNN) needs >= 36x36 images; our windows are 28-40 px, so
        # the policies of fernn.agents use their own extractors (SmallCNN, the FERNN core) instead.
        warnings.filterwarnings("ignore", message="The minimal resolution for an image is 36x36")
        # Explained: the prediction envs' actions are frames with pixels in [0, 1] by design (supervised mode).
        if env_id in ("FlowingMNIST-v0", "RotatingMNIST-v0"):
            warnings.filterwarnings("ignore", message="We recommend you to use a symmetric and normalized Box")
        sb3_check_env(gym.make(env_id, **kwargs), warn=True)


def test_same_seed_same_rollout_and_fresh_arrays(env_spec):
    env_id, kwargs = env_spec
    env = gym.make(env_id, **kwargs)
    first, second = rollout(env, 3, 30), rollout(env, 3, 30)
    assert same(first, second)
    assert not same(first, rollout(env, 4, 30))
    obs, _ = env.reset(seed=0)
    after, *_ = env.step(env.action_space.sample())
    assert not np.shares_memory(obs, after)
    kept = after.copy()
    after[...] = 0
    assert np.array_equal(env.unwrapped.batch.observe()[0], kept)
    assert env.unwrapped.core is env.unwrapped.batch  # the former name still works


def random_steps(env_spec, steps):
    env_id, kwargs = env_spec
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and np.isfinite(reward)
        if terminated or truncated:
            env.reset()


def test_random_steps_ci(env_spec):
    random_steps(env_spec, 300)


@pytest.mark.slow
def test_ten_thousand_random_steps(env_spec):
    random_steps(env_spec, 10_000)


@pytest.mark.parametrize("env_id", SCENE_IDS)
def test_native_vector_env_equals_single_envs_seeded_seed_plus_i(env_id):
    vector = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    assert vector.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, _ = vector.reset(seed=10)
    singles = [gym.make(env_id) for _ in range(3)]
    for i, env in enumerate(singles):
        single_obs, _ = env.reset(seed=10 + i)
        assert np.array_equal(obs[i], single_obs)
    vector.action_space.seed(0)
    for _ in range(5):
        actions = vector.action_space.sample()
        obs, rewards, terminated, truncated, _ = vector.step(actions)
        for i, env in enumerate(singles):
            single_obs, reward, *_ = env.step(actions[i])
            assert np.array_equal(obs[i], single_obs) and np.isclose(rewards[i], reward, atol=1e-6)


def test_native_vector_env_autoresets_on_the_next_step():
    vector = gym.make_vec("FlowingMNIST-v0", num_envs=2, vectorization_mode="vector_entry_point", seq_len=3)
    vector.reset(seed=0)
    zeros = np.zeros(vector.action_space.shape, np.float32)
    dones = [vector.step(zeros)[2] for _ in range(2)]
    assert not dones[0].any() and dones[1].all()
    obs, rewards, terminated, truncated, _ = vector.step(zeros)
    assert (rewards == 0).all() and not terminated.any()
    truncating = gym.make_vec("MNISTWorld-v0", num_envs=2, vectorization_mode="vector_entry_point")
    truncating.reset(seed=0)
    outcomes = [truncating.step(np.zeros(2, np.int64))[3] for _ in range(100)]
    assert not np.any(outcomes[:99]) and outcomes[99].all()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gymnasium_vector_modes_work_for_every_registered_id(mode, env_spec):
    """Gymnasium's own vector envs stack each step's info across envs: every id's info keeps its shapes from
    episode to episode (the block world pads its per-block arrays to the most blocks an episode can have)."""
    env_id, kwargs = env_spec
    if env_id in BLOCK_IDS:
        kwargs = {**kwargs, "obs_size": 16, "room_size": 6, "num_blocks": [1, 4]}
    vector = gym.make_vec(env_id, num_envs=3, vectorization_mode=mode, max_episode_steps=3, **kwargs)
    vector.action_space.seed(0)
    obs, infos = vector.reset(seed=0)
    for _ in range(7):  # two autoresets: new episodes of other block counts
        obs, rewards, terminated, truncated, infos = vector.step(vector.action_space.sample())
        assert obs.shape == vector.observation_space.shape and rewards.shape == (3,)
    if env_id in BLOCK_IDS:
        assert infos["block_color"].shape == (3, 4) and (infos["num_blocks"] <= 4).all()
    vector.close()


@pytest.mark.parametrize("vec_env", ["dummy", "subproc"])
def test_sb3_vec_envs(vec_env):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    cls = DummyVecEnv if vec_env == "dummy" else SubprocVecEnv
    # SubprocVecEnv's forkserver workers start fresh: the module-prefixed id imports fernn.envs there
    envs = make_vec_env("fernn.envs:MNISTWorldTrack-v0", n_envs=2, seed=0, vec_env_cls=cls)
    obs = envs.reset()
    obs, rewards, dones, infos = envs.step(np.array([1, 2]))
    assert obs.shape == (2, 32, 32, 2) and rewards.shape == (2,) and "target_position" in infos[0]
    envs.close()


def test_human_rendering_is_lazy_and_headless():
    env = gym.make("MNISTWorldTrack-v0", render_mode="human")
    assert env.unwrapped._viewer is None
    env.reset(seed=0)
    env.step(0)
    assert env.unwrapped._viewer is not None and env.unwrapped._viewer.screen is not None
    env.close()
    env.close()


def test_rgb_arrays_and_keys():
    for env_id in MNIST_IDS:
        env = gym.make(env_id, render_mode="rgb_array")
        env.reset(seed=0)
        frame = env.render()
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    mapping = gym.make("MNISTWorld-v0").unwrapped.get_keys_to_action()
    assert sorted(mapping.values()) == list(range(9)) and mapping[()] == 0


def test_tracking_oracle_beats_random_and_multidiscrete_variant():
    def mean_return(policy, env_kwargs, episodes=3):
        env = gym.make("MNISTWorldTrack-v0", **env_kwargs)
        total = 0.0
        for seed in range(episodes):
            env.reset(seed=seed)
            env.action_space.seed(seed)
            done = False
            while not done:
                _, reward, terminated, truncated, _ = env.step(policy(env))
                total, done = total + reward, terminated or truncated
        return total / episodes

    oracle = mean_return(lambda env: env.unwrapped.oracle_action(), {})
    random = mean_return(lambda env: env.action_space.sample(), {})
    assert oracle > 80 and random < 0.6 * oracle
    assert mean_return(lambda env: env.unwrapped.oracle_action(), {"action_type": "multidiscrete"}) > 80


def test_info_contents():
    env = gym.make("MNISTWorld-v0", world_in_info=True, action_type="multidiscrete", step_size=3)
    obs, info = env.reset(seed=0)
    assert info["world"].shape == (50, 50) and info["position"].shape == (2,)
    _, _, _, _, info = env.step(np.array([6, 0]))
    assert info["action"].tolist() == [3, -3] and 0 < info["coverage"] <= 1
    env = gym.make("FlowingMNIST-v0", seq_len=3)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    *_, terminated, _, info = env.step(env.action_space.sample())
    assert terminated and info["digits"].shape == (2,) and info["velocities"].shape == (2, 2) and info["mse"] > 0


@pytest.mark.parametrize("env_id, kwargs, error, match", [
    ("FlowingMNIST-v0", {"num_digit": 2}, TypeError, "unknown argument.*'num_digit'.*accepted: split"),
    ("FlowingMNIST-v0", {"num_digits": "two"}, TypeError, "num_digits must be an integer"),
    ("FlowingMNIST-v0", {"image_size": -3}, ValueError, "image_size must be an integer >= 1"),
    ("FlowingMNIST-v0", {"image_size": 20}, ValueError, "image_size must be >= 28"),
    ("FlowingMNIST-v0", {"velocities": []}, ValueError, "velocities must not be empty"),
    ("FlowingMNIST-v0", {"seq_len": 1}, ValueError, "seq_len must be >= 2"),
    ("FlowingMNIST-v0", {"source": "web"}, ValueError, "source must be one of"),
    ("RotatingMNIST-v0", {"angular_velocities": []}, ValueError, "angular_velocities must not be empty"),
    ("MNISTWorld-v0", {"window_size": 60}, ValueError, "window_size must be <= world_size"),
    ("MNISTWorld-v0", {"world_size": 20}, ValueError, "world_size must be >= 28"),
    ("MNISTWorld-v0", {"action_type": "continuous"}, ValueError, "action_type must be one of"),
    ("MNISTWorld-v0", {"render_mode": "ansi"}, ValueError, "render_mode must be one of"),
    ("FlowingMNIST-v0", {"source": "full", "data_dir": "/nonexistent/fernn"}, DataMissingError, "full MNIST not found"),
    ("KTHCamera-v0", {"data_dir": "/nonexistent/fernn"}, DataMissingError, "KTH actions not found"),
])
@pytest.mark.filterwarnings("ignore:.*render_mode='ansi'")  # Gymnasium's own warning before ours raises
def test_bad_kwargs_are_named(env_id, kwargs, error, match):
    with pytest.raises(error, match=match):
        gym.make(env_id, **kwargs)


def test_bad_actions_and_stepping_after_the_end():
    env = gym.make("MNISTWorldTrack-v0").unwrapped
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space Discrete\\(9\\)"):
        env.step(9)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(1.5)
    flowing = gym.make("FlowingMNIST-v0", seq_len=2).unwrapped
    flowing.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space Box"):
        flowing.step(np.full((28, 28, 1), 2.0, np.float32))
    with pytest.raises(ValueError, match="outside the action space"):
        flowing.step(np.zeros((28, 28), np.float32))
    flowing.step(np.zeros((28, 28, 1), np.float32))
    with pytest.raises(RuntimeError, match="after the episode ended"):
        flowing.step(np.zeros((28, 28, 1), np.float32))


def test_occluded_tracking_goes_dark_in_gaps_while_the_world_and_reward_go_on():
    env = gym.make("MNISTWorldTrackOccluded-v0", gap_every=5, gap_length=2,
                   target_velocities=fernn.envs.unseen_velocities(1, 2))
    obs, info = env.reset(seed=3)
    assert not info["occluded"] and obs.any()
    rewards = []
    for t in range(1, 16):
        obs, reward, _, _, info = env.step(env.unwrapped.oracle_action())
        assert bool(info["occluded"]) == (t % 5 >= 3) == (not obs.any())
        rewards.append(reward)
        velocity = env.unwrapped.batch.scene["velocities"][0, 0].tolist()
        assert max(abs(v) for v in velocity) == 2  # an unseen target velocity
    assert min(rewards) > 0.9  # the oracle keeps the target in the (dark) window
    for kwargs, message in (({"gap_every": 5, "gap_length": 5}, "gap_length must be < gap_every"),
                            ({"gap_every": -1}, "gap_every")):
        with pytest.raises(ValueError, match=message):
            gym.make("MNISTWorldTrack-v0", **kwargs)


@pytest.mark.parametrize("seeds", [[1.5, 2], [1, True], [-1, 2], ["1", 2]])
def test_a_vector_env_refuses_seed_lists_that_are_not_ints(seeds):
    envs = gym.make_vec("FlowingMNIST-v0", num_envs=2, vectorization_mode="vector_entry_point")
    with pytest.raises(ValueError, match="non-negative ints"):
        envs.reset(seed=seeds)
    obs, _ = envs.reset(seed=[1, np.int64(2)])
    assert obs.shape[0] == 2


@pytest.mark.parametrize("env_id", ["MNISTWorld-v0", "DynamicBlockWorld-v0"])
def test_an_action_too_large_for_any_integer_is_the_documented_value_error(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="cannot be read as Discrete"):
        env.step(2 ** 70)


def test_the_tracking_studies_cells_are_defined_once():
    """The seen / unseen / gap cells every tracking study evaluates on (RL grid, planner, dream) come from one
    module: seen = the eight radius-1 velocities the env trains on by default, unseen = a component of 2."""
    from fernn.agents.dream import TRACKING_SETTINGS
    from fernn.envs.tracking_studies import GAP_EVERY, STUDY_CELLS, study_kwargs, target_velocities

    seen, unseen = target_velocities("seen"), target_velocities("unseen")
    assert len(seen) == 8 and all(max(map(abs, v)) == 1 for v in seen)
    assert unseen and all(max(map(abs, v)) == 2 for v in unseen)
    assert study_kwargs("unseen-gap4") == {"target_velocities": unseen, "gap_every": GAP_EVERY, "gap_length": 4}
    assert set(TRACKING_SETTINGS) <= set(STUDY_CELLS)
    env = gym.make("MNISTWorldTrack-v0", **study_kwargs("seen"))
    default = gym.make("MNISTWorldTrack-v0")
    assert np.array_equal(env.reset(seed=3)[0], default.reset(seed=3)[0])  # "seen" is the env's own default
    with pytest.raises(ValueError, match="unknown tracking study cell"):
        study_kwargs("both")
