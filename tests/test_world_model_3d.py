"""FloWM in 3-D and its RSSM baseline: shapes, the map transport, consistency of observing and imagining,
gradients, clear errors; and the whole pipeline from the CLI at a tiny budget (collect, train every model,
eval, rollout, plan to the red block)."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fernn import EgocentricFlow, WorldModel3D
from fernn.agents.cli import app
from fernn.rssm import RSSM

ROOM, VIEW = 4, 16
SMALL = dict(room_size=ROOM, view_size=VIEW, encoder_channels=8, decoder_channels=8)


def views(batch=2, steps=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    obs = torch.rand(batch, steps, 3, VIEW, VIEW, generator=generator)
    actions = torch.randint(0, 4, (batch, steps), generator=generator)
    return obs, actions


@pytest.mark.parametrize("kwargs", [{}, {"flow": EgocentricFlow(0)}, {"self_motion": False}],
                         ids=["flowm", "no-velocities", "no-self-motion"])
def test_shapes_and_the_ablations_share_the_api(kwargs):
    model = WorldModel3D(3, 4, **SMALL, **kwargs)
    obs, actions = views()
    predictions, maps = model(obs, actions, return_maps=True)
    velocities = len(model.flow.velocities)
    assert predictions.shape == obs.shape and torch.isfinite(predictions).all()
    assert maps.shape == (2, 4, velocities, 4, 2 * ROOM + 1, 2 * ROOM + 1)
    assert model.view_shape == (3, VIEW, VIEW) and model.motion_kind == "first-person"
    imagined, imagined_maps = model.imagine(maps[:, -1], actions[:, :3], return_maps=True)
    assert imagined.shape == (2, 3, 3, VIEW, VIEW) and imagined_maps.shape == (2, 3, *maps.shape[2:])


def test_imagining_from_the_last_map_continues_the_observed_sequence():
    torch.manual_seed(0)
    model = WorldModel3D(3, 4, **SMALL)
    obs, actions = views(steps=6)
    _, maps = model(obs[:, :3], actions[:, :3], return_maps=True)
    assert torch.allclose(model.rollout(obs[:, :3], actions[:, :3], actions[:, 3:]),
                          model.imagine(maps[:, -1], actions[:, 3:]), atol=1e-6)


def test_move_is_the_exact_group_action_of_the_egocentric_flow():
    model = WorldModel3D(3, 2, **SMALL)
    maps = torch.randn(3, len(model.flow.velocities), 2, 2 * ROOM + 1, 2 * ROOM + 1)
    left, right = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    four_left = maps
    for _ in range(4):
        four_left = model.move(four_left, left)
    stays = maps
    for _ in range(4):
        stays = model.move(stays, torch.full((3,), 3))
    assert torch.equal(four_left, stays)
    assert torch.equal(model.move(model.move(maps, left), right), model.move(model.move(maps, right), left))
    actions = torch.tensor([0, 2, 3])  # each sample moves its own way in one call
    one_by_one = torch.cat([model.move(maps[i:i + 1], actions[i:i + 1]) for i in range(3)])
    assert torch.equal(model.move(maps, actions), one_by_one)


def test_without_self_motion_a_turn_does_not_turn_the_map():
    model = WorldModel3D(3, 2, flow=EgocentricFlow(0), self_motion=False, **SMALL)
    maps = torch.randn(2, 1, 2, 2 * ROOM + 1, 2 * ROOM + 1)
    assert torch.equal(model.move(maps, torch.tensor([0, 2])), maps)


@pytest.mark.parametrize("model", [WorldModel3D(3, 4, **SMALL),
                                   RSSM(3, VIEW, 4, deterministic=16, width=2, classes=4, stoch=4)],
                         ids=["flowm-3d", "rssm"])
def test_gradients_reach_every_parameter(model):
    obs, actions = views()
    loss = model.rollout(obs[:, :2], actions[:, :2], actions[:, 2:]).pow(2).mean()
    if isinstance(model, RSSM):
        loss = loss + model.elbo_loss(obs, actions)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def test_rssm_shapes_and_imagination_from_its_state():
    model = RSSM(3, VIEW, 4, deterministic=16, width=2, classes=4, stoch=4)
    obs, actions = views(steps=5)
    predictions, states = model(obs, actions, return_maps=True)
    assert predictions.shape == obs.shape and states.shape == (2, 5, model.state_size)
    assert model.imagine(states[:, -1], actions[:, :2]).shape == (2, 2, 3, VIEW, VIEW)
    assert float(model.elbo_loss(obs, actions).detach()) > 0


@pytest.mark.parametrize("build, match", [
    (lambda: WorldModel3D(3, 4, flow="five", **SMALL), "EgocentricFlow"),
    (lambda: WorldModel3D(3, 4, room_size=4, view_size=18), "multiple of 4"),
    (lambda: WorldModel3D(3, 4, fov=180, **SMALL), r"fov must be in \(0, 180\)"),
])
def test_bad_arguments_are_named(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_bad_inputs_are_named():
    model = WorldModel3D(3, 4, **SMALL)
    obs, actions = views()
    with pytest.raises(ValueError, match="actions"):
        model(obs, actions + 4)
    with pytest.raises(ValueError):
        model(torch.rand(2, 4, 3, VIEW + 4, VIEW + 4), actions)


def test_the_pipeline_from_the_cli_on_a_tiny_budget(tmp_path):
    """collect -> train FloWM-3D, both ablations and the RSSM -> eval -> rollout -> plan to the red block."""
    runner = CliRunner()
    scene = json.dumps({"obs_size": VIEW, "room_size": 6, "num_blocks": [2, 3]})
    data = tmp_path / "blocks.npz"
    result = runner.invoke(app, ["collect", "--env", "dynamic-block-world", "--env-kwargs", scene, "--policy",
                                 "biased-walk", "--episodes", "4", "--max-steps", "12", "--out", str(data), "-q"])
    assert result.exit_code == 0, result.output
    tiny = ["--data", str(data), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--hidden", "2",
            "--context", "3", "--predict", "3", "--eval-context", "4", "--eval-horizons", "3,6", "--eval-sequences",
            "2", "--val-batches", "1", "--out", str(tmp_path), "--device", "cpu", "-q"]
    for model in ("fernn-3d", "fernn-3d-no-velocities", "fernn-3d-no-self-motion", "rssm"):
        result = runner.invoke(app, ["train", *tiny, "--model", model, "--name", model])
        assert result.exit_code == 0, result.output
        results = json.loads((tmp_path / model / "results.json").read_text())
        assert results["test"]["context"] == 4 and len(results["test"]["mse_per_step"]) == 3
        assert list(results["length_generalization"]) == ["10"]  # 4 context + 6 predicted views
        assert set(results["test"]) >= {"mse_in_view", "mse_out_of_view", "mse_background", "psnr", "ssim"}
        assert (tmp_path / model / "rollout.gif").is_file()
    result = runner.invoke(app, ["eval", str(tmp_path / "fernn-3d"), "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["plan", "--env", "dynamic-block-world-find-red", "--env-kwargs", scene,
                                 "--world-model", str(tmp_path / "fernn-3d"), "--episodes", "1", "--horizon", "2",
                                 "--candidates", "4", "--iterations", "1", "--out", str(tmp_path / "plan"), "-q"])
    assert result.exit_code == 0, result.output
    plan = json.loads((tmp_path / "plan" / "results.json").read_text())
    assert plan["final_info"]["red_distance"][0] >= 0 and plan["decisions_per_second"] > 0
    assert plan["settings"]["score"] == "red-ink"  # auto: a first-person world model scores the red block
    result = runner.invoke(app, ["plan", "--env", "dynamic-block-world-find-red", "--env-kwargs", scene,
                                 "--world-model", str(tmp_path / "fernn-3d"), "--score", "target-ink", "-q"])
    assert result.exit_code == 2 and "first-person views" in result.output and "red-ink" in result.output
    result = runner.invoke(app, ["train", "--preset", "flowm-3d", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--data FILE.npz" in result.output and "obs_size" in result.output
    result = runner.invoke(app, ["train", *tiny[:2], "--eval-horizons", "3,x", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--eval-horizons" in result.output


def test_red_ink_scores_the_red_block_and_nothing_else_of_the_block_world():
    from fernn.agents.planning import red_ink
    from fernn.envs.block_scenes import BLOCK_RGB
    from fernn.envs.first_person import CEILING_RGB, FLOOR_RGB, WALL_RGB

    def view(rgb, brightness=1.0):  # (1, 1, 3, 4, 4): one imagined view of one colour
        return (torch.tensor(rgb) * brightness).view(1, 1, 3, 1, 1).expand(1, 1, 3, 4, 4)

    assert red_ink(view(BLOCK_RGB[0])).item() > 0.4 and red_ink(view(BLOCK_RGB[0], 0.6)).item() > 0.1
    for rgb in (*BLOCK_RGB[1:], WALL_RGB, FLOOR_RGB, CEILING_RGB):
        assert red_ink(view(rgb)).item() == 0.0, rgb
    half = view(BLOCK_RGB[0]).clone()
    half[..., :2] = view(WALL_RGB)[..., :2]  # the block covers half of the view
    assert 0 < red_ink(half).item() < red_ink(view(BLOCK_RGB[0])).item()
    two_steps = torch.cat([view(BLOCK_RGB[0]), view(WALL_RGB)], 1)  # (1, 2, 3, 4, 4): summed over the horizon
    assert red_ink(two_steps).shape == (1,) and red_ink(two_steps).item() == pytest.approx(red_ink(view(BLOCK_RGB[0])).item())


@pytest.mark.parametrize("fov", [60.0, 90.0])
def test_the_lift_looks_where_the_renderer_draws_a_block(fov):
    """The lift's geometry agrees with the block world's camera: for every cell of the field-of-view cone (clearly
    inside the picture), the point the lift samples for a block on that cell is drawn as that block, when the block
    world renders one there; and the readout's rays cross the map where the cells are (the same cell layout)."""
    from fernn.envs.block_scenes import BLOCK_RGB, BlockState
    from fernn.envs.first_person import FirstPersonRenderer

    room, view = 12, 48
    model = WorldModel3D(3, 2, room_size=room, view_size=view, fov=fov)
    renderer = FirstPersonRenderer(room, view, fov, "cpu")
    agent, size, checked = (0, room // 2), model.map_size, 0
    for cell, point in zip(model.cone_cells.tolist(), model.cone_points[:, 1].tolist()):
        left, ahead = cell // size - room, cell % size - room
        x, y = agent[0] + ahead, agent[1] + left  # facing east: ahead is +x, left is +y
        if not (0 <= x < room and 0 <= y < room) or max(map(abs, point)) > 0.9 or ahead > 6:
            continue
        scene = BlockState(torch.tensor([agent]), torch.tensor([0]), torch.tensor([[[x, y]]]), torch.zeros(1, 1, 2,
                           dtype=torch.long), torch.tensor([[2]]), torch.ones(1, 1, dtype=torch.bool))
        picture = renderer.render(scene)[0].float() / 255
        column = round((point[0] + 1) / 2 * view - 0.5)
        row = round((point[1] + 1) / 2 * view - 0.5)
        colour = picture[row, column]
        blue = torch.tensor(BLOCK_RGB[2])
        assert torch.allclose(colour / colour.max(), blue / blue.max(), atol=0.05), (ahead, left, row, column)
        checked += 1
    assert checked >= 20
    # the readout's first ray step of the middle columns is the cell straight ahead, one cell away
    middle = model.ray_points[0, view // 4]
    to_cell = lambda coordinate: round((float(coordinate) + 1) / 2 * size - 0.5) - room  # noqa: E731
    assert (to_cell(middle[0]), to_cell(middle[1])) == (1, 0)


def test_a_policy_dreamed_in_first_person_world_models(tmp_path):
    """dream takes FloWM-3D and the RSSM through the world-model protocol: random find-red episodes -> tiny world
    models -> a policy learned on a reward head -> evaluated in the real env; target-ink is refused there."""
    runner = CliRunner()
    scene = json.dumps({"obs_size": VIEW, "room_size": 6, "num_blocks": [2, 3]})
    data = tmp_path / "red.npz"
    result = runner.invoke(app, ["collect", "--env", "dynamic-block-world-find-red", "--env-kwargs", scene,
                                 "--episodes", "4", "--max-steps", "12", "--out", str(data), "-q"])
    assert result.exit_code == 0, result.output
    for model in ("fernn-3d", "rssm"):
        result = runner.invoke(app, ["train", "--data", str(data), "--model", model, "--epochs", "1",
                                     "--steps-per-epoch", "1", "--batch-size", "2", "--hidden", "2", "--context", "3",
                                     "--predict", "2", "--eval-sequences", "2", "--val-batches", "1", "--out",
                                     str(tmp_path), "--name", model, "--device", "cpu", "-q"])
        assert result.exit_code == 0, result.output
        dream = ["dream", "--world-model", str(tmp_path / model), "--env", "dynamic-block-world-find-red",
                 "--env-kwargs", scene, "--horizon", "2", "--batch-size", "2", "--steps", "1", "--eval-every", "1",
                 "--eval-episodes", "1", "--context", "3", "--device", "cpu", "--out", str(tmp_path), "-q"]
        result = runner.invoke(app, [*dream, "--score", "reward-head"])
        assert result.exit_code == 0, result.output
        results = json.loads((tmp_path / f"dream-{model}-s0" / "results.json").read_text())
        assert results["updates"] == 1 and results["reward_head_fit"]["steps"] > 0 and "env" in results["final"]
    result = runner.invoke(app, [*dream, "--score", "target-ink", "--name", "ink"])
    assert result.exit_code == 2 and "first-person world: use --score reward-head" in result.output, result.output


def test_predicted_block_pixels_split_into_in_view_memory_and_never_seen(tmp_path):
    """The memory-aware evaluation's classes partition the predicted pixels and agree, pixel by pixel, with a plain
    reference: a block pixel is *in view* if its block was in the last context view, *memory* if in an earlier one
    only, *never seen* otherwise."""
    from fernn.agents.collect import collect_file
    from fernn.agents.supervised.config import TrainConfig
    from fernn.agents.supervised.evaluation_3d import painted_over, truth_state, view_masks
    from fernn.agents.supervised.tasks import TEST_SEED, make_task
    from fernn.envs.first_person import FirstPersonRenderer

    data = tmp_path / "blocks.npz"
    collect_file("DynamicBlockWorld-v0", data, episodes=6, max_steps=24, policy="biased-walk",
                 env_kwargs={"obs_size": 16, "room_size": 6, "num_blocks": [3, 4]})
    task = make_task(TrainConfig.from_dict({"env": "trajectories", "data": str(data), "model": "fernn-3d",
                                            "context": 8, "predict": 8}), torch.device("cpu"))
    batch = task.dataset("test", TEST_SEED, seq_len=16).sample_batch(6)
    context = 8
    masks = view_masks(task, batch, context)
    classes = [masks[name].int() for name in ("in_view", "memory", "never_seen", "background")]
    assert torch.equal(sum(classes), torch.ones_like(classes[0]))  # a partition of the predicted pixels
    assert torch.equal(masks["out_of_view"], masks["memory"] | masks["never_seen"])
    room = painted_over(task, batch, context, masks["background"])  # the room without its blocks
    targets = batch["frames"][:, context:]
    assert room is not None
    pixels = {name: (room.permute(0, 1, 3, 4, 2)[masks[name]], targets.permute(0, 1, 3, 4, 2)[masks[name]])
              for name in ("background", "in_view")}
    torch.testing.assert_close(*pixels["background"], rtol=0, atol=1.5 / 255)
    assert (pixels["in_view"][0] - pixels["in_view"][1]).abs().amax() > 0.1  # a block's pixels show the room behind
    spec = task.model_spec()
    renderer = FirstPersonRenderer(spec["room_size"], spec["view_size"], spec["fov"], "cpu")
    ids = renderer.block_ids(truth_state(batch, slice(0, 16))).view(6, 16, 16, 16)
    for b in range(6):
        last, earlier = set(ids[b, context - 1].flatten().tolist()), set(ids[b, :context].flatten().tolist())
        for t in range(8):
            for (y, x), block in np.ndenumerate(ids[b, context + t].numpy()):
                kind = "background" if block < 0 else "in_view" if block in last else \
                    "memory" if block in earlier else "never_seen"
                assert masks[kind][b, t, y, x], (b, t, y, x, kind)


def test_the_cpu_protocol_presets_ask_for_their_data_and_measure_memory(tmp_path):
    """--preset flowm-3d-cpu and its twins name the collect command of their data; the protocol's shares of the
    predicted block pixels (experiments/flowm3d_protocol.py) are measured from the ground truth and add up."""
    import sys
    from pathlib import Path

    from fernn.agents.supervised.presets import PRESETS

    runner = CliRunner()
    for name in ("flowm-3d-cpu", "flowm-3d-cpu-no-velocities", "flowm-3d-cpu-no-self-motion", "flowm-3d-cpu-rssm"):
        assert PRESETS[name].settings["context"] == 32 and PRESETS[name].settings["eval_horizons"] == [32, 96]
        result = runner.invoke(app, ["train", "--preset", name, "--out", str(tmp_path)])
        assert result.exit_code == 2 and '"room_size": 8' in result.output and "blocks8.npz" in result.output
    data = tmp_path / "blocks8.npz"
    assert runner.invoke(app, ["collect", "--env", "dynamic-block-world", "--env-kwargs",
                               '{"obs_size": 16, "room_size": 8}', "--policy", "biased-walk", "--episodes", "8",
                               "--max-steps", "30", "--out", str(data), "-q"]).exit_code == 0
    experiments = Path(__file__).resolve().parent.parent / "experiments"
    sys.path.insert(0, str(experiments))
    try:
        import flowm3d_protocol
    finally:
        sys.path.remove(str(experiments))
    shares = flowm3d_protocol.shares(data, 10, [8, 16], sequences=16)
    for row in shares.values():
        assert row["block_pixels"] > 0 and abs(row["in_view"] + row["memory"] + row["never_seen"] - 1) < 1e-9
