"""No run selects its checkpoint on its test data: every task validates on data disjoint from its test data
(generated tasks: the training digits or persons and a seed range of their own; trajectory files: episodes of
their own), and results.json names the split that selected the checkpoint and the split of every metric."""

import json

import numpy as np
import pytest
import torch

from fernn.agents.supervised.config import TrainConfig
from fernn.agents.supervised.tasks import TEST_SEED, VAL_SEED, make_task

CPU = torch.device("cpu")


def _sequences(dataset, count: int) -> np.ndarray:
    return dataset.sample_batch(count)["frames"].flatten(1).numpy()


@pytest.mark.parametrize("env", ["flowing-mnist", "rotating-mnist", "kth-camera", "mnist-world"])
def test_a_generated_tasks_validation_and_test_windows_are_disjoint(env, kth_root):
    settings = {"env": env, "hidden": 2, "batch_size": 2}
    settings.update({"data_dir": str(kth_root)} if env == "kth-camera" else {"source": "embedded"})
    task = make_task(TrainConfig.from_dict(settings), CPU)
    assert task.validation_split == "val"
    validation = _sequences(task.dataset(task.validation_split, VAL_SEED), 16)
    test = _sequences(task.dataset("test", TEST_SEED), 16)
    assert not (validation[:, None] == test[None]).all(-1).any()  # no validation sequence is a test sequence
    assert VAL_SEED != TEST_SEED


def test_digit_scenes_validate_on_training_digits_never_on_test_digits():
    from fernn.envs.datasets import scene_digits

    assert scene_digits("train") == scene_digits("val") == "train" and scene_digits("test") == "test"
    with pytest.raises(ValueError, match="split must be one of"):
        scene_digits("holdout")


def test_a_trajectory_file_is_split_into_train_validation_and_test_episodes(tmp_path):
    from fernn.agents.collect import collect_file

    data = tmp_path / "world.npz"
    collect_file("MNISTWorld-v0", data, episodes=20, max_steps=8, env_kwargs={"world_size": 28, "window_size": 8})
    task = make_task(TrainConfig.from_dict({"env": "trajectories", "data": str(data), "context": 3, "predict": 2,
                                            "hidden": 2}), CPU)
    parts = {name: set(part._episodes.indices) for name, part in task.data.parts.items()}
    assert set(parts) == {"train", "val", "test"} and all(parts.values())
    assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"] and not parts["val"] & parts["test"]
    assert sum(map(len, parts.values())) == 20
    assert task.data.split_sizes() == {name: len(indices) for name, indices in parts.items()}
    validation, test = task.dataset(task.validation_split, VAL_SEED), task.dataset("test", TEST_SEED)
    assert validation is task.data.parts["val"] and test is task.data.parts["test"]


def test_a_file_of_two_episodes_is_refused_with_the_remedy(tmp_path):
    from fernn.agents.collect import collect_file

    data = tmp_path / "two.npz"
    collect_file("MNISTWorld-v0", data, episodes=2, max_steps=8, env_kwargs={"world_size": 28, "window_size": 8})
    with pytest.raises(ValueError, match="at least 3: collect more episodes"):
        make_task(TrainConfig.from_dict({"env": "trajectories", "data": str(data), "context": 3, "predict": 2}), CPU)


def test_results_name_the_split_that_selected_the_checkpoint(tmp_path):
    from fernn.agents.collect import collect_file
    from fernn.agents.supervised.trainer import train

    data = tmp_path / "world.npz"
    collect_file("MNISTWorld-v0", data, episodes=6, max_steps=8, env_kwargs={"world_size": 28, "window_size": 8})
    config = TrainConfig.from_dict({"env": "trajectories", "data": str(data), "context": 3, "predict": 2, "hidden": 2,
                                    "epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "val_batches": 1,
                                    "eval_sequences": 2, "device": "cpu", "out": str(tmp_path), "name": "wm"})
    train(config)
    results = json.loads((tmp_path / "wm" / "results.json").read_text())
    assert results["splits"]["selection"] == {"checkpoint": "best", "split": "val", "metric": "val_mse",
                                              "mode": "min"}
    assert results["splits"]["metrics"] == "test"
    assert results["splits"]["episodes"] == {"train": 4, "val": 1, "test": 1}
