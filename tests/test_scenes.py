"""Scene generators and dataset adapters: correctness against per-frame references, seeding, shapes."""

import numpy as np
import pytest
import torch

from fernn.envs import (FlowingMNISTDataset, MNISTWorldDataset, RotatingMNISTDataset, RotationScenes,
                        TranslationScenes, WorldScenes, load_mnist, make_generator, unseen_velocities, velocity_grid)
from fernn.envs.sprites import composite, render_layers


def test_render_layers_equals_rolling_each_sprite():
    canvases = torch.randint(0, 256, (3, 2, 9, 11), dtype=torch.uint8)
    shifts = torch.randint(-20, 20, (3, 2, 4, 2))
    layers = render_layers(canvases, shifts, (5, 7))
    for b in range(3):
        for k in range(2):
            for t in range(4):
                sx, sy = shifts[b, k, t].tolist()
                rolled = torch.roll(canvases[b, k], shifts=(sy, sx), dims=(0, 1))
                assert torch.equal(layers[b, k, t], rolled[:5, :7])
    summed = canvases.int().sum(1).clamp(max=255).to(torch.uint8)
    assert torch.equal(composite(render_layers(canvases, torch.zeros(3, 2, 1, 2, dtype=torch.long)))[:, 0], summed)


def test_translation_scenes_move_each_digit_by_its_velocity():
    scenes = TranslationScenes(load_mnist("test", source="embedded"), num_digits=1, seq_len=6, velocities=[(2, -1)])
    batch = scenes.sample(4, make_generator(0, "cpu"))
    assert batch.frames.shape == (4, 6, 28, 28) and batch.frames.dtype == torch.uint8
    assert (batch.velocities == torch.tensor([2, -1])).all()
    for t in range(5):
        assert torch.equal(batch.frames[:, t + 1], torch.roll(batch.frames[:, t], shifts=(-1, 2), dims=(-2, -1)))
    floats = batch.float_frames()
    assert floats.shape == (4, 6, 1, 28, 28) and floats.min() >= 0 and floats.max() <= 1


def test_translation_frames_are_summed_and_clipped_digits():
    scenes = TranslationScenes(load_mnist("train", source="embedded"), num_digits=3, seq_len=2)
    params = scenes.draw(2, make_generator(1, "cpu"))
    frames = scenes.render(params).frames
    expected = torch.zeros(2, 2, 28, 28, dtype=torch.int32)
    for b in range(2):
        for k in range(3):
            for t in range(2):
                x, y = (params["starts"][b, k] + params["velocities"][b, k] * t).tolist()
                expected[b, t] += torch.roll(params["images"][b, k].int(), shifts=(y, x), dims=(0, 1))
    assert torch.equal(frames, expected.clamp(max=255).to(torch.uint8))


def test_generators_are_seeded_and_never_touch_global_rngs():
    scenes = TranslationScenes(load_mnist("train", source="embedded"))
    torch.manual_seed(123)
    a = scenes.sample(3, make_generator(7, "cpu")).frames
    torch.manual_seed(456)
    b = scenes.sample(3, make_generator(7, "cpu")).frames
    assert torch.equal(a, b)
    assert not torch.equal(a, scenes.sample(3, make_generator(8, "cpu")).frames)
    state = torch.get_rng_state()
    scenes.sample(2, make_generator(1, "cpu"))
    assert torch.equal(state, torch.get_rng_state())


def test_rotation_scenes_turn_like_rot90_and_stay_padded():
    scenes = RotationScenes(load_mnist("test", source="embedded"), num_digits=1, seq_len=3, angular_velocities=[90])
    params = scenes.draw(2, make_generator(0, "cpu"))
    params["starts"].zero_()
    frames = scenes.render(params).frames.int()
    assert frames.shape == (2, 3, 40, 40)
    assert (frames[:, :, :6].sum() == 0) and (frames[:, :, :, -6:].sum() == 0)
    turned = torch.rot90(frames[:, 0], 1, (-2, -1))
    assert (frames[:, 1] - turned).abs().max() <= 1


def test_world_windows_are_crops_of_the_world_at_the_window_position():
    scenes = WorldScenes(load_mnist("train", source="embedded"), world_size=40, window_size=16, num_digits=4,
                         seq_len=5, velocities=2, step_size=6)
    batch = scenes.sample(3, make_generator(0, "cpu"), with_target=True, with_world=True)
    assert batch.windows.shape == (3, 5, 16, 16) and batch.world.shape == (3, 5, 40, 40)
    assert (batch.actions[:, 0] == 0).all() and batch.actions.abs().max() <= 6
    steps = (batch.positions[:, 1:] - batch.positions[:, :-1]) % 40
    assert torch.equal(steps, batch.actions[:, 1:] % 40)
    for b in range(3):
        for t in range(5):
            x, y = batch.positions[b, t].tolist()
            crop = torch.roll(batch.world[b, t], shifts=(-y, -x), dims=(0, 1))[:16, :16]
            assert torch.equal(batch.windows[b, t], crop)
    assert (batch.target <= batch.windows).all()


def test_velocity_sets():
    assert len(velocity_grid(2)) == 25 and velocity_grid(1)[0] == (-1, -1)
    unseen = unseen_velocities(1, 2)
    assert len(unseen) == 16 and (0, 0) not in unseen and (2, -1) in unseen
    with pytest.raises(ValueError, match="must not be empty"):
        TranslationScenes(load_mnist("train", source="embedded"), velocities=[])
    with pytest.raises(ValueError, match=r"velocities\[1\] must be a pair of integers"):
        TranslationScenes(load_mnist("train", source="embedded"), velocities=[(1, 0), (1.5, 0)])
    with pytest.raises(ValueError, match="finite number"):
        RotationScenes(load_mnist("train", source="embedded"), angular_velocities=[10, float("nan")])
    with pytest.raises(ValueError, match="image_size must be >= 28"):
        TranslationScenes(load_mnist("train", source="embedded"), image_size=20)
    with pytest.raises(ValueError, match="window_size must be <= world_size"):
        WorldScenes(load_mnist("train", source="embedded"), world_size=30, window_size=31)


@pytest.mark.parametrize("dataset, shape", [
    (lambda: FlowingMNISTDataset(length=5, seq_len=4), (4, 1, 28, 28)),
    (lambda: RotatingMNISTDataset(length=5, seq_len=4), (4, 1, 40, 40)),
    (lambda: MNISTWorldDataset(length=5, seq_len=4), (4, 1, 32, 32)),
])
def test_dataset_adapters(dataset, shape):
    data = dataset()
    item = data[3]
    assert item["frames"].shape == shape and item["frames"].dtype == torch.float32
    assert 0 <= float(item["frames"].min()) and float(item["frames"].max()) <= 1
    assert all(torch.equal(item[k], data[3][k]) for k in item)  # an index is always the same sequence
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    assert next(iter(loader))["frames"].shape == (2, *shape)
    batch = data.sample_batch(6)
    assert batch["frames"].shape == (6, *shape)
    with pytest.raises(IndexError):
        data[5]


def test_embedded_mnist_is_real_and_split():
    train, test = load_mnist("train", source="embedded"), load_mnist("test", source="embedded")
    assert train.images.shape == (4000, 28, 28) and test.images.shape == (1000, 28, 28)
    assert train.images.dtype == np.uint8 and set(np.unique(train.labels)) == set(range(10))
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert 100 < train.images.mean() * 784 / 255 < 200  # a handwritten digit covers ~100-200 px of ink
