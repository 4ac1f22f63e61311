"""Property-based tests (Hypothesis): the envs under random kwargs, actions, seeds and reset options; the flows'
equivariance contract under random velocity sets, frame sizes and shifts; the CLI's argument validation under
random values. ``make test`` runs the ``ci`` profile (few examples, bounded time); ``make test-all`` the ``slow``
profile (``HYPOTHESIS_PROFILE=slow``)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import fernn.envs  # noqa: F401
from fernn import FERNN, TranslationFlow, check_equivariance
from fernn.agents.cli import app

runner = CliRunner()
MNIST_IDS = ["FlowingMNIST-v0", "RotatingMNIST-v0", "MNISTWorld-v0", "MNISTWorldStatic-v0", "MNISTWorldTrack-v0",
             "MNISTWorldTrackOccluded-v0"]
ints = st.integers(min_value=-3, max_value=80)
KWARGS = {
    "FlowingMNIST-v0": st.fixed_dictionaries({}, optional={"image_size": ints, "num_digits": st.integers(-1, 4),
                                                          "seq_len": st.integers(-1, 12), "velocities": st.integers(-1, 5)}),
    "RotatingMNIST-v0": st.fixed_dictionaries({}, optional={"num_digits": st.integers(-1, 3), "seq_len": st.integers(-1, 8),
                                                           "pad": st.integers(-2, 8)}),
    "MNISTWorld-v0": st.fixed_dictionaries({}, optional={"world_size": ints, "window_size": ints,
                                                        "num_digits": st.integers(-1, 6), "step_size": st.integers(-2, 40),
                                                        "velocities": st.integers(-1, 4)}),
    "MNISTWorldStatic-v0": st.fixed_dictionaries({}, optional={"world_size": ints, "window_size": ints}),
    "MNISTWorldTrack-v0": st.fixed_dictionaries({}, optional={"world_size": ints, "window_size": ints,
                                                             "step_size": st.integers(-2, 40)}),
    "MNISTWorldTrackOccluded-v0": st.fixed_dictionaries({}, optional={"gap_every": st.integers(-1, 8),
                                                                     "gap_length": st.integers(-1, 8)}),
}
ACCEPTED_ERRORS = (TypeError, ValueError)


def _rollout(env_id, kwargs, seed, steps):
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    observations, previous = [obs], obs
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs is not previous and np.isfinite(reward)
        observations.append(obs)
        previous = obs
        if terminated or truncated:
            break
    for obs in observations:
        assert env.observation_space.contains(obs)
    env.close()
    return observations


@pytest.mark.parametrize("env_id", MNIST_IDS)
@given(data=st.data(), seed=st.integers(0, 2 ** 31 - 1), steps=st.integers(0, 6))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_envs_give_valid_deterministic_episodes_or_a_clear_error(env_id, data, seed, steps):
    kwargs = data.draw(KWARGS[env_id], label="kwargs")
    try:
        gym.make(env_id, **kwargs).close()
    except ACCEPTED_ERRORS as error:
        assert str(error), "errors must say what is wrong"
        return
    first = _rollout(env_id, kwargs, seed, steps)
    second = _rollout(env_id, kwargs, seed, steps)
    assert len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))


@given(num_envs=st.integers(1, 4), seed=st.one_of(st.none(), st.integers(0, 2 ** 31 - 1)),
       masks=st.lists(st.lists(st.booleans(), min_size=4, max_size=4), max_size=3))
def test_native_vector_env_resets_are_valid(num_envs, seed, masks):
    envs = gym.make_vec("MNISTWorldTrack-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        world_size=40, window_size=20, num_digits=2)
    obs, _ = envs.reset(seed=seed)
    assert envs.observation_space.contains(obs)
    for mask in masks:
        again, _ = envs.reset(options={"reset_mask": np.array(mask[:num_envs])})
        assert envs.observation_space.contains(again) and again is not obs
        obs, *_ = envs.step(envs.action_space.sample())
    envs.close()


velocity_sets = st.lists(st.tuples(st.integers(-2, 2), st.integers(-2, 2)), min_size=1, max_size=6, unique=True)


@given(velocities=velocity_sets, size=st.integers(5, 11), data=st.data())
@settings(deadline=None)
def test_translation_fernn_is_exactly_equivariant_for_in_grid_flows(velocities, size, data):
    flow = TranslationFlow(velocities)
    first, second = data.draw(st.sampled_from(velocities), label="v"), data.draw(st.sampled_from(velocities), label="w")
    nu = (first[0] - second[0], first[1] - second[1])  # channel v = first has its partner v - nu = second
    torch.manual_seed(0)
    rnn = FERNN(1, 2, flow)
    x = torch.rand(1, 4, 1, size, size)
    report = check_equivariance(rnn, flow, nu, x)
    assert report.max_rel <= 1e-5


@given(shift=st.tuples(st.integers(-30, 30), st.integers(-30, 30)), size=st.integers(3, 12))
@settings(deadline=None)
def test_an_offset_equals_rolling_the_state_first(shift, size):
    rnn = FERNN(1, 2, TranslationFlow(1))
    x, state = torch.rand(2, 1, size, size), torch.rand(2, 9, 2, size, size)
    offsets = torch.tensor([shift, (-shift[0], shift[1])])
    rolled = torch.stack([torch.roll(state[b], (int(offsets[b, 1]), int(offsets[b, 0])), (-2, -1)) for b in range(2)])
    torch.testing.assert_close(rnn.step(x, state, offsets=offsets), rnn.step(x, rolled))


FLAGS = {"--vmax": st.integers(-5, 10 ** 21), "--hidden": st.integers(-5, 10 ** 9), "--batch-size": st.integers(-5, 10 ** 9),
         "--seed": st.integers(-5, 10 ** 21), "--epochs": st.integers(-5, 10 ** 6), "--lr": st.floats(allow_nan=True),
         "--velocities": st.text(max_size=12), "--angular-velocities": st.text(max_size=12),
         "--env": st.sampled_from(["flowing-mnist", "nope", "KTHCamera-v0", "mnist-world", ""]),
         "--device": st.sampled_from(["cpu", "tpu", "cuda:x", "auto"])}


@given(data=st.data())
@settings(deadline=None, max_examples=40)
def test_cli_argument_validation_is_one_line(tmp_path_factory, data):
    """Random flag values on a run that does not exist: every answer is one ``error:`` line (the flag's, or that
    there is nothing to resume), exit status 2, never a traceback; nothing trains."""
    chosen = data.draw(st.lists(st.sampled_from(sorted(FLAGS)), unique=True, max_size=4), label="flags")
    args = ["train", "--resume", "--quiet", "--out", str(tmp_path_factory.mktemp("out"))]
    for flag in chosen:
        value = data.draw(FLAGS[flag], label=flag)
        assume(not (isinstance(value, str) and value.startswith("-")))
        args += [flag, str(value)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)


@st.composite
def trajectory_files(draw):
    """A small valid trajectory file, then one random fault: a field's dtype or shape, the lengths, a header's
    declared shape, or the file truncated at a random byte."""
    count = draw(st.integers(1, 3))
    lengths = [draw(st.integers(0, 4)) for _ in range(count)]
    arrays = {"format": np.array("fernn-trajectories"), "version": np.array(1), "lengths": np.array(lengths),
              "meta": np.array("{}")}
    for index, length in enumerate(lengths):
        arrays.update({f"obs_{index:06d}": np.zeros((length + 1, 5, 5, 1), np.uint8),
                       f"actions_{index:06d}": np.zeros(length + 1, np.int64),
                       f"rewards_{index:06d}": np.zeros(length + 1, np.float32),
                       f"terminated_{index:06d}": np.zeros(length + 1, bool),
                       f"truncated_{index:06d}": np.zeros(length + 1, bool)})
    fault = draw(st.sampled_from(["none", "dtype", "shape", "lengths", "header", "truncate"]))
    name = draw(st.sampled_from(sorted(arrays)))
    if fault == "dtype":
        dtype = draw(st.sampled_from([np.float32, np.int16, np.float64, np.int8]))
        arrays[name] = np.zeros(arrays[name].shape, dtype)
    elif fault == "shape":
        arrays[name] = np.zeros(draw(st.lists(st.integers(0, 6), max_size=4)), arrays[name].dtype)
    elif fault == "lengths":
        arrays["lengths"] = np.array(draw(st.lists(st.integers(-2, 10 ** 12), min_size=0, max_size=4)))
    shape = draw(st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=4)) if fault == "header" else None
    cut = draw(st.floats(0, 1)) if fault == "truncate" else None
    return arrays, name, shape, cut


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(trajectory_files())
def test_no_trajectory_file_is_trusted(tmp_path, drawn):
    """Whatever is wrong with a file, loading it either works or is one line naming it, and never allocates more
    than a few MB, whatever sizes the file declares."""
    import tracemalloc

    from tests.test_trajectory_files import forge_header

    arrays, name, shape, cut = drawn
    path = tmp_path / "fuzzed.npz"
    np.savez_compressed(path, **arrays)
    if shape is not None:
        forge_header(path, name, tuple(shape), arrays[name].dtype.str)
    if cut is not None:
        data = path.read_bytes()
        path.write_bytes(data[:int(len(data) * cut)])
    tracemalloc.start()
    try:
        data = fernn.envs.TrajectoryDataset.load(path, window=1)
        data.sample_batch(2)
    except fernn.envs.TrajectoryFileError as error:
        assert "\n" not in str(error) and str(path) in str(error), str(error)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak / 2 ** 20:.0f} MiB allocated"
