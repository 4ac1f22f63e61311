"""Planning with the world model: the batched CEM planner equals the one-candidate-at-a-time reference on the
same seeds, carries its map across real steps, runs as a policy on the tracking env, and rejects bad settings."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import fernn.envs  # noqa: F401
from fernn import TranslationFlow, WorldModel
from fernn.agents.bench.reference import NaivePlanner
from fernn.agents.planning import CEMPlanner
from fernn.envs.mnist_world import DIRECTIONS

SMALL_TRACK = dict(world_size=28, window_size=12, num_digits=2, velocities=1, step_size=1)


def planner(cls=CEMPlanner, **kwargs):
    torch.manual_seed(0)
    model = WorldModel(2, 2, TranslationFlow(1), world_size=28, window_size=12, decoder_layers=0)
    return cls(model, DIRECTIONS, horizon=3, candidates=6, iterations=2, elites=2, seed=1, **kwargs)


def test_batched_planner_equals_the_one_at_a_time_reference():
    env = gym.make_vec("MNISTWorldTrack-v0", num_envs=2, vectorization_mode="vector_entry_point", **SMALL_TRACK)
    obs, _ = env.reset(seed=0)
    fast, slow = planner(), planner(NaivePlanner)
    state_fast = state_slow = None
    starts = np.ones(2, bool)
    for _ in range(3):
        a_fast, state_fast = fast.predict(obs, state_fast, starts)
        a_slow, state_slow = slow.predict(obs, state_slow, starts)
        assert np.array_equal(a_fast, a_slow)
        torch.testing.assert_close(state_fast.maps, state_slow.maps)
        obs, _, terminated, truncated, _ = env.step(a_fast)
        starts = terminated | truncated


def test_the_map_is_carried_not_recomputed():
    """Observing step by step with the carried map equals the world model over the whole sequence."""
    plan = planner()
    frames = np.random.default_rng(0).integers(0, 256, (4, 1, 12, 12, 2), dtype=np.uint8)
    moves = torch.tensor([[0, 0], [1, 0], [0, -1], [1, 1]])
    state = None
    for t in range(4):
        state = plan.observe(frames[t], state)
        state.moves = moves[t + 1:t + 2] if t + 1 < 4 else state.moves
    tensor = torch.as_tensor(frames[:, 0]).permute(0, 3, 1, 2).float().div(255)[None]
    _, maps = plan.world_model(tensor, moves[None], return_maps=True)
    torch.testing.assert_close(state.maps, maps[:, -1], rtol=1e-5, atol=1e-6)


def test_bad_settings_are_named():
    model = WorldModel(2, 2, TranslationFlow(1), world_size=24, window_size=12)
    for kwargs, message in (({"horizon": 0}, "horizon"), ({"candidates": 0}, "candidates"),
                            ({"elites": 9, "candidates": 4}, "elites must be <= candidates")):
        with pytest.raises(ValueError, match=message):
            CEMPlanner(model, DIRECTIONS, **kwargs)
    with pytest.raises(ValueError, match=r"moves must be an \(A, 2\) table"):
        CEMPlanner(model, np.zeros((3, 3)))
    with pytest.raises(TypeError, match="WorldModelProtocol; object lacks motions"):
        CEMPlanner(object(), DIRECTIONS)


def test_a_dark_window_is_filled_with_the_models_own_prediction():
    """fill_gaps: an all-zero window (a gap) is taken in as the clipped prediction, so the map keeps imagining;
    with fill_gaps=False the dark frame is written into the map."""
    plan = planner()
    frames = np.random.default_rng(0).integers(0, 256, (2, 12, 12, 2), dtype=np.uint8)
    state = plan.observe(frames, None)
    state.moves = torch.tensor([[1, 0], [0, 1]])
    dark = frames.copy()
    dark[0] = 0  # env 0 in a gap, env 1 sees
    filled = plan.observe(dark, state)
    model = plan.world_model
    imagined = filled.predictions[0:1, None].clamp(0, 1)
    _, expected = model(imagined, state.moves[0:1, None], state.maps[0:1], return_maps=True)
    torch.testing.assert_close(filled.maps[0:1], expected[:, -1])
    _, seen = model(torch.as_tensor(dark[1:2, None]).permute(0, 1, 4, 2, 3).float().div(255), state.moves[1:2, None],
                    state.maps[1:2], return_maps=True)
    torch.testing.assert_close(filled.maps[1:2], seen[:, -1])
    plan.fill_gaps = False
    written = plan.observe(dark, state)
    assert not torch.allclose(written.maps[0], filled.maps[0])
    with pytest.raises(ValueError, match=r"observations must be uint8 views \(B, h, w, C\) = \(B, 12, 12, 2\)"):
        plan.observe(np.zeros((1, 16, 16, 2), np.uint8), None)


def test_the_tracking_env_names_its_action_moves():
    env = gym.make("MNISTWorldTrack-v0", **SMALL_TRACK)
    assert env.unwrapped.action_moves().tolist() == (DIRECTIONS * 1).tolist()
    with pytest.raises(ValueError, match="action_type='discrete'"):
        gym.make("MNISTWorld-v0", action_type="multidiscrete").unwrapped.action_moves()


class _NoMoves(gym.Env):
    """Windows of the right shape and Discrete actions, but no word on how actions move the observer."""

    observation_space = gym.spaces.Box(0, 255, (12, 12, 2), np.uint8)
    action_space = gym.spaces.Discrete(9)


def test_an_env_the_world_model_does_not_fit_is_one_clear_error():
    from fernn.agents.planning_eval import env_action_moves

    model = WorldModel(2, 2, TranslationFlow(1), world_size=28, window_size=12)
    assert env_action_moves(gym.make("MNISTWorldTrack-v0", **SMALL_TRACK), model).shape == (9, 2)
    for env, message in ((gym.make("MNISTWorldTrack-v0", **{**SMALL_TRACK, "window_size": 16}), r"\(12, 12, 2\)"),
                         (gym.make("MNISTWorld-v0", world_size=28, window_size=12), r"observes uint8 \(12, 12, 1\)"),
                         (_NoMoves(), "action_moves"),
                         (gym.make("MNISTWorld-v0", world_size=28, window_size=12, action_type="multidiscrete"),
                          "Discrete action space")):
        with pytest.raises(ValueError, match=message):
            env_action_moves(env, WorldModel(2 if "Track" in str(env) or isinstance(env, _NoMoves) else 1, 2,
                                              TranslationFlow(1), world_size=28, window_size=12) if message
                             == "Discrete action space" else model)


def test_cli_plan_collect_train_plan_on_a_tiny_budget(tmp_path):
    """The documented pipeline at a tiny size: collect random episodes with moves, train the world model, plan
    with it; results.json and the GIF; bad flags and mismatched models one line each."""
    import json

    from typer.testing import CliRunner

    from fernn.agents.cli import app

    runner, kwargs = CliRunner(), json.dumps(SMALL_TRACK)
    data = tmp_path / "track.npz"
    result = runner.invoke(app, ["collect", "--env", "mnist-world-track", "--env-kwargs", kwargs, "--episodes", "4",
                                 "--max-steps", "12", "--out", str(data), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "--data", str(data), "--model", "fernn", "--vmax", "1", "--world-size", "28",
                                 "--hidden", "2", "--context", "3", "--predict", "2", "--epochs", "1",
                                 "--steps-per-epoch", "2", "--batch-size", "2", "--val-batches", "1",
                                 "--eval-sequences", "2", "--device", "cpu", "--quiet", "--out", str(tmp_path),
                                 "--name", "wm"])
    assert result.exit_code == 0, result.output
    plan = ["plan", "--env", "mnist-world-track", "--world-model", str(tmp_path / "wm"), "--env-kwargs",
            json.dumps({**SMALL_TRACK, "gap_every": 4, "gap_length": 2}), "--horizon", "2", "--candidates", "4",
            "--iterations", "2", "--elites", "2", "--episodes", "3", "--parallel", "2", "--quiet"]
    result = runner.invoke(app, plan)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "wm" / "plan-mnistworldtrack" / "results.json").read_text())
    assert len(results["returns"]) == 3 and results["decisions"] == 3 * 100 and results["decisions_per_second"] > 0
    assert len(results["imagined_mse_per_step"]) == 2 and results["settings"]["candidates"] == 4
    assert (tmp_path / "wm" / "plan-mnistworldtrack" / "episode.gif").stat().st_size > 0
    result = runner.invoke(app, [*plan, "--score", "reward-head", "--episodes", "2", "--no-gif", "--out",
                                 str(tmp_path / "head")])
    assert result.exit_code == 0, result.output
    fitted = json.loads((tmp_path / "head" / "results.json").read_text())["settings"]
    assert fitted["score"] == "reward-head" and fitted["reward_head_fit"]["steps"] == 300
    assert not (tmp_path / "head" / "episode.gif").exists()
    world = ["--world-model", str(tmp_path / "wm"), "--quiet"]
    other_window = ["--env-kwargs", json.dumps({"world_size": 28, "window_size": 12})]
    for bad, message in ((["--env", "mnist-world-track", "--candidates", "4", "--elites", "8", *world],
                          "--elites (8) must be <= --candidates (4)"),
                         (["--env", "mnist-world", *other_window, *world], "(12, 12, 2)"),
                         (["--env", "mnist-world-track", "--world-model", str(tmp_path / "nowhere")], "nowhere"),
                         (["--env", "mnist-world-track", "--checkpoint", "first", *world],
                          "--checkpoint must be best or last"),
                         (["--env", "mnist-world-track", "--reward-data", str(data), *world], "add --score reward-head"),
                         (["--env", "mnist-world-track", "--env-kwargs", kwargs, "--candidates", "4096", "--parallel",
                           "1000", "--episodes", "1000", "--elites", "2", *world], "GiB"),
                         (["--env", "mnist-world-track", "--env-kwargs", kwargs, "--score", "reward-head",
                           "--reward-data", str(tmp_path / "none.npz"), *world], "none.npz")):
        result = runner.invoke(app, ["plan", *bad])
        assert result.exit_code == 2 and message in " ".join(result.output.split()) \
            and "Traceback" not in result.output, result.output
    result = runner.invoke(app, [*plan[:-1], "--horizon", "0"])
    assert result.exit_code == 2


def test_planner_evaluation_settings_are_checked():
    from fernn.agents.planning_eval import evaluate_planner

    for name in ("episodes", "parallel", "error_every"):
        with pytest.raises(ValueError, match=f"{name} must be an integer >= 1"):
            evaluate_planner(planner(), "MNISTWorldTrack-v0", **{name: 0})


def _box_moves(actions: torch.Tensor) -> torch.Tensor:
    """A Box(-1, 1, (2,)) action as a window move of up to one pixel per axis."""
    return actions.round().long()


def test_box_planner_equals_its_one_at_a_time_reference_and_stays_in_the_box():
    from fernn.agents.bench.reference import one_at_a_time
    from fernn.agents.planning import BoxCEMPlanner

    def make():
        torch.manual_seed(0)
        model = WorldModel(2, 2, TranslationFlow(1), world_size=28, window_size=12, decoder_layers=0)
        return BoxCEMPlanner(model, [-1, -1], [1, 1], _box_moves, horizon=3, candidates=6, iterations=2, elites=2,
                             seed=1)

    env = gym.make_vec("MNISTWorldTrack-v0", num_envs=2, vectorization_mode="vector_entry_point", **SMALL_TRACK)
    obs, _ = env.reset(seed=0)
    fast, slow = make(), one_at_a_time(make())
    state_fast = state_slow = None
    for _ in range(2):
        a_fast, state_fast = fast.predict(obs, state_fast)
        a_slow, state_slow = slow.predict(obs, state_slow)
        assert a_fast.shape == (2, 2) and a_fast.dtype == np.float32 and np.abs(a_fast).max() <= 1
        np.testing.assert_array_equal(a_fast, a_slow)
        assert torch.equal(state_fast.moves, _box_moves(torch.as_tensor(a_fast)))
        obs, *_ = env.step(np.zeros(2, np.int64))


def test_box_planner_bad_settings_are_named():
    from fernn.agents.planning import BoxCEMPlanner

    model = WorldModel(2, 2, TranslationFlow(1), world_size=24, window_size=12)
    for low, high in (([1], [-1]), ([0, 0], [1]), ([-np.inf], [1])):
        with pytest.raises(ValueError, match="finite bounds of the same shape"):
            BoxCEMPlanner(model, low, high, _box_moves)
    with pytest.raises(TypeError, match="to_moves must map"):
        BoxCEMPlanner(model, [-1], [1], "round")
    planner = BoxCEMPlanner(model, [-1, -1], [1, 1], lambda a: a, horizon=1, candidates=2, elites=1)
    with pytest.raises(ValueError, match="to_moves must return integer moves"):
        planner.predict(np.zeros((1, 12, 12, 2), np.uint8))


def test_tied_scores_keep_the_candidates_in_order():
    """A world that scores every candidate the same (nothing to track yet): the elites are the first candidates, in
    order, and the plan is the first candidate's first action, on any machine; a strict best still wins."""
    from fernn.agents.planning import top_elites

    tied = torch.zeros(2, 6)
    top, index = top_elites(tied, 3)
    assert index.tolist() == [[0, 1, 2], [0, 1, 2]] and (top == 0).all()
    scores = torch.tensor([[0.0, 1.0, 1.0, 0.5], [2.0, 2.0, 2.0, 3.0]])
    assert top_elites(scores, 2)[1].tolist() == [[1, 2], [3, 0]]
    plan = planner()
    plan.score = lambda imagined: torch.zeros(imagined.shape[0])  # every candidate ties
    maps = plan.world_model.initial_state(2, device="cpu")
    generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
    first = plan.plan(maps, generators)
    draws = [torch.rand((plan.candidates, plan.horizon), generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    expected = [int((d[0, 0] >= torch.arange(1, len(plan.moves) + 1) / len(plan.moves)).sum().clamp_max(
        len(plan.moves) - 1)) for d in draws]
    assert first.tolist() == expected  # candidate 0's first action of the first round
