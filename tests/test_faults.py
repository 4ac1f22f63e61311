"""Faults and bad input, each reproduced first: one clear error (or the documented no-op), never a traceback from
deep inside torch, never a blow-up of memory."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import fernn.envs  # noqa: F401
from fernn import FERNN, RotationFlow, TranslationFlow
from fernn.agents.cli import app

runner = CliRunner()


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.count("error:") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.mark.parametrize("flags,message", [
    (["--vmax", "1000"], "vmax must be <= 13"),
    (["--eval-vmax", "50"], "eval_vmax must be <= 13"),
    (["--batch-size", "100000"], "GiB"),
    (["--env", "rotating-mnist", "--group-order", "1000"], "GiB"),
    (["--seed", "99999999999999999999"], "seed"),
])
def test_resource_blow_ups_are_refused_with_the_figure(tmp_path, flags, message):
    one_line_error(runner.invoke(app, ["train", *flags, "--out", str(tmp_path), "--quiet"]), message)
    assert list(tmp_path.iterdir()) == []


def test_flows_and_models_refuse_sizes_that_cannot_fit():
    with pytest.raises(ValueError, match="velocity channels; at most"):
        TranslationFlow(10 ** 6)
    with pytest.raises(ValueError, match="GiB"):
        FERNN(1, 32, RotationFlow([0, 10], group_order=1000))
    with pytest.raises(ValueError, match="image_size must be <= 4096"):
        gym.make("FlowingMNIST-v0", image_size=100000)


def test_mnist_world_moves_stay_within_half_the_world():
    with pytest.raises(ValueError, match="step_size must be <= world_size // 2"):
        gym.make("MNISTWorld-v0", step_size=1000)


def test_native_vector_env_reset_edge_cases():
    envs = gym.make_vec("FlowingMNIST-v0", num_envs=3, vectorization_mode="vector_entry_point")
    with pytest.raises(ValueError, match="first reset must reset every env"):
        envs.reset(options={"reset_mask": np.zeros(3, bool)})
    first, _ = envs.reset(seed=np.int64(3))
    again, _ = envs.reset(seed=3)
    assert np.array_equal(first, again)
    kept, _ = envs.reset(options={"reset_mask": np.zeros(3, bool)})  # a no-op
    assert np.array_equal(kept, first)
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": [1, 0, 1]})


def test_fernn_refuses_mismatched_dtypes_and_devices():
    rnn = FERNN(1, 2, TranslationFlow(1))
    for dtype in (torch.float64, torch.float16):
        with pytest.raises(TypeError, match="dtype"):
            rnn(torch.rand(1, 2, 1, 8, 8).to(dtype))
    with pytest.raises(ValueError, match="on meta"):
        rnn(torch.rand(1, 2, 1, 8, 8), state=torch.zeros(1, 9, 2, 8, 8, device="meta"))


def test_device_names_are_checked_by_every_command(tmp_path):
    one_line_error(runner.invoke(app, ["train", "--algo", "recurrent-ppo", "--device", "tpu", "--out",
                                       str(tmp_path)]), "device must be")
    one_line_error(runner.invoke(app, ["train", "--device", "tpu", "--out", str(tmp_path)]), "device must be")


def test_bench_json_into_a_file_is_one_line_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    one_line_error(runner.invoke(app, ["bench", "step", "--json", str(tmp_path / "afile" / "x.json")]), "is a file")
