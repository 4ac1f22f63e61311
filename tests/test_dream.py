"""Learning in imagination: the world model's one-step imagination equals its rollout, the λ-returns, a tiny
dream run end to end through the CLI (resume, eval, rollout), and its errors."""

import json

import pytest
import torch
from typer.testing import CliRunner

from fernn import TranslationFlow, WorldModel
from fernn.agents.cli import app
from fernn.agents.dream import DreamConfig, lambda_returns

runner = CliRunner()
SMALL = json.dumps({"world_size": 28, "window_size": 12, "num_digits": 2, "velocities": 1, "step_size": 1})


def test_imagining_step_by_step_equals_imagining_a_sequence():
    torch.manual_seed(0)
    model = WorldModel(2, 4, TranslationFlow(1), world_size=20, window_size=8)
    _, maps = model(torch.rand(2, 3, 2, 8, 8), torch.randint(-1, 2, (2, 3, 2)), return_maps=True)
    future = torch.randint(-1, 2, (2, 4, 2))
    state, predictions = maps[:, -1], []
    for k in range(4):
        prediction, state = model.imagine_step(state, future[:, k])
        predictions.append(prediction)
    torch.testing.assert_close(torch.stack(predictions, 1), model.imagine(maps[:, -1], future), rtol=0, atol=0)


def test_lambda_returns_are_discounted_returns_at_lambda_one_and_td_at_zero():
    rewards, values = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.5, 1.0, 2.0, 4.0]])
    full = lambda_returns(rewards, values, 0.9, 1.0)
    assert torch.allclose(full[0, 0], torch.tensor(1 + 0.9 * 2 + 0.81 * 3 + 0.729 * 4))
    td = lambda_returns(rewards, values, 0.9, 0.0)
    assert torch.allclose(td, rewards + 0.9 * values[:, 1:])


def test_a_tiny_dream_run_end_to_end(tmp_path):
    data, out = tmp_path / "track.npz", str(tmp_path)
    assert runner.invoke(app, ["collect", "--env", "mnist-world-track", "--env-kwargs", SMALL, "--episodes", "4",
                               "--max-steps", "14", "--out", str(data), "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["train", "--data", str(data), "--model", "fernn", "--vmax", "1", "--world-size", "28",
                                 "--hidden", "2", "--context", "3", "--predict", "2", "--epochs", "1",
                                 "--steps-per-epoch", "2", "--batch-size", "2", "--val-batches", "1",
                                 "--eval-sequences", "2", "--device", "cpu", "--quiet", "--out", out, "--name", "wm"])
    assert result.exit_code == 0, result.output
    dream = ["dream", "--world-model", str(tmp_path / "wm"), "--env", "mnist-world-track", "--env-kwargs", SMALL,
             "--horizon", "3", "--batch-size", "2", "--eval-every", "2", "--eval-episodes", "1", "--device", "cpu",
             "--out", out, "--quiet"]
    result = runner.invoke(app, [*dream, "--steps", "2"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "dream-wm-s0"
    results = json.loads((run / "results.json").read_text())
    assert set(results["final"]) == {"seen", "unseen", "unseen-gap4"} and results["updates"] == 2
    assert json.loads((run / "run.json").read_text())["kind"] == "dream"
    result = runner.invoke(app, [*dream, "--steps", "4", "--resume"])
    assert result.exit_code == 0 and json.loads((run / "results.json").read_text())["updates"] == 4, result.output
    assert len((run / "eval.csv").read_text().strip().splitlines()) == 3  # header + updates 2 and 4
    assert runner.invoke(app, ["eval", str(run), "--episodes", "1"]).exit_code == 0
    assert runner.invoke(app, ["rollout", str(run)]).exit_code == 0 and (run / "episode.gif").is_file()
    for bad, message in ((["--world-model", str(run)], "is not a supervised"),
                         (["--world-model", str(tmp_path / "wm"), "--horizon", "0"], "horizon"),
                         (["--world-model", str(tmp_path / "wm"), "--env", "flowing-mnist"], "uint8 views")):
        result = runner.invoke(app, ["dream", *bad, "--out", out, "--name", "bad", "--device", "cpu"])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output


def test_the_config_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="world_model"):
        DreamConfig()
    with pytest.raises(ValueError, match="steps"):
        DreamConfig(world_model="x", steps=0)
    with pytest.raises(ValueError, match="score"):
        DreamConfig(world_model="x", score="ink")
