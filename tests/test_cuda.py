"""On a CUDA device (skipped without one; ``make test-gpu``): every model, the batched scene generators, the
trainer under bf16 autocast and the SB3 policy run on the GPU and agree with the CPU."""

import pytest
import torch

from fernn import (FERNN, CNN3DClassifier, GRNNPlus, NextFramePredictor, RotationFlow, SequenceClassifier,
                   TranslationFlow, WorldModel, check_equivariance)

pytestmark = pytest.mark.cuda


def _models():
    return {
        "fernn-translation": (FERNN(1, 4, TranslationFlow(1)), lambda m, x: m(x)),
        "fernn-rotation": (FERNN(1, 2, RotationFlow([-90, 0, 90], group_order=4)), lambda m, x: m(x)),
        "grnn-plus": (GRNNPlus(1, 4, TranslationFlow(1)), lambda m, x: m(x)),
        "predictor": (NextFramePredictor(1, 4, TranslationFlow(1), decoder_layers=1), lambda m, x: m(x, 3)),
        "classifier": (SequenceClassifier(1, 4, TranslationFlow(1), 6), lambda m, x: m(x)),
        "cnn3d": (CNN3DClassifier(1, 6, base=4), lambda m, x: m(x)),
        "world-model": (WorldModel(1, 4, TranslationFlow(1), world_size=16, window_size=12),
                        lambda m, x: m(x[..., :12, :12], torch.randint(-2, 3, (x.shape[0], x.shape[1], 2),
                                                                       generator=torch.Generator().manual_seed(0)))),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_every_model_runs_on_cuda_and_matches_the_cpu(name):
    model, run = _models()[name]
    model.eval()
    x = torch.rand(2, 5, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    expected = run(model, x)
    got = run(model.cuda(), x.cuda())
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-3, atol=1e-4)
    got.float().square().mean().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_equivariance_holds_on_cuda():
    flow = TranslationFlow(2)
    model = FERNN(1, 4, flow).cuda()
    x = torch.rand(2, 6, 1, 12, 12, device="cuda")
    assert check_equivariance(model, flow, (1, -1), x).max_rel <= 1e-5


@pytest.mark.parametrize("dataset", ["FlowingMNISTDataset", "RotatingMNISTDataset", "MNISTWorldDataset"])
def test_scene_generators_produce_batches_on_the_device(dataset):
    import fernn.envs

    data = getattr(fernn.envs, dataset)(source="embedded", seq_len=6, seed=0, device="cuda")
    batch = data.sample_batch(8)
    assert batch["frames"].device.type == "cuda" and batch["frames"].shape[:2] == (8, 6)


def test_trainer_runs_on_cuda_with_bf16_autocast(tmp_path):
    from fernn.agents import TrainConfig, train

    config = TrainConfig(env="flowing-mnist", model="fernn", vmax=1, data_vmax=1, eval_vmax=1, hidden=4,
                         decoder_layers=1, context=3, predict=3, epochs=1, steps_per_epoch=4, batch_size=4,
                         val_batches=1, eval_sequences=4, source="embedded", device="cuda", amp=True,
                         out=str(tmp_path))
    result = train(config)
    assert result.step == 4 and result.results["test"]["mse"] < 1.0


def test_sb3_policy_trains_on_cuda():
    from stable_baselines3.common.env_util import make_vec_env

    import fernn.envs  # noqa: F401
    from fernn.agents import FERNNRecurrentPPO

    env = make_vec_env("fernn.envs:MNISTWorldTrack-v0", n_envs=2, seed=0,
                       env_kwargs=dict(world_size=32, window_size=12, num_digits=2, velocities=1, step_size=1))
    model = FERNNRecurrentPPO("FERNNPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cuda",
                              policy_kwargs=dict(fernn_hidden=2, vmax=1, features_dim=16))
    model.learn(16)
    assert next(model.policy.parameters()).device.type == "cuda"
