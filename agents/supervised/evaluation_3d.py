"""The evaluations of first-person world models (FloWM's 3-D protocol at the run's scale).

Held-out episodes: ``eval_context`` views observed (default ``context``), then free-running prediction along
the recorded motions for each of ``eval_horizons`` (default ``predict``, the trained horizon, and ``4 predict``,
length generalisation; FloWM's protocol is 70 and 210 views after 70), as far as the episodes are long enough.
Per predicted step: MSE, PSNR and SSIM; the shortest horizon is the test, each longer one a length cell. With the episodes' ground truth (the block world records it),
each predicted block pixel is told apart by where its block was during the context, from the same ray casting
that draws the views: *in view* at the context's end; *memory*, seen earlier and out of view at the end (the block
FloWM's map must remember and move while unseen: ``mse_memory`` is the headline of memory); *never seen* in the
context (no model can know it; ``block_pixel_shares`` says how much of the prediction a protocol leaves to it);
the rest of the picture is *background*. ``painted_over`` gives each class's MSE for the room drawn perfectly with
no block (:func:`painted_over`): a model's block pixels beat it only by drawing blocks. Files: the curves per step and
a GIF of real | predicted views beside the true map and the model's map, both egocentric (the agent in the
middle facing right).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fernn.envs.block_scenes import BLOCK_RGB, BlockState, directions
from fernn.envs.first_person import FirstPersonRenderer
from fernn.agents import plots
from fernn.agents.progress import report_progress
from fernn.agents.runs import RunDir
from fernn.agents.supervised.metrics import mse, psnr, ssim
from fernn.agents.supervised.tasks_3d import WorldModel3DTask
from fernn.egocentric import motion_ids

CHUNK = 16  # sequences per forward pass
#: the classes of predicted block pixels (:func:`view_masks`); ``memory`` is the 3-D table's headline
BLOCK_CLASSES = ("in_view", "memory", "never_seen")


def _rollouts(task: WorldModel3DTask, model, batch: dict[str, torch.Tensor], context: int) -> torch.Tensor:
    """Free-running predictions after ``context`` views, in chunks of sequences: ``(B, T - context, C, H, W)``."""
    parts, count = [], len(batch["frames"])
    for first in range(0, count, CHUNK):
        chunk = {key: value[first:first + CHUNK] for key, value in batch.items()}
        parts.append(task.predict(model, chunk, context=context)[0].float().clamp(0, 1))
        report_progress(min(first + CHUNK, count), count)
    return torch.cat(parts)


def eval_protocol(config, longest: int | None = None) -> tuple[int, list[int]]:
    """``(context, horizons)`` of the evaluation: the config's ``eval_context`` and ``eval_horizons`` or their
    defaults (``context``; ``predict`` and ``4 predict``, the longer one cut to what held-out episodes of
    ``longest`` views hold)."""
    context = config.eval_context or config.context
    if config.eval_horizons:
        return context, sorted(set(config.eval_horizons))
    longer = 4 * config.predict if longest is None else max(config.predict, min(4 * config.predict, longest - context))
    return context, sorted({config.predict, longer})


def truth_state(batch: dict[str, torch.Tensor], steps: slice) -> BlockState:
    """The recorded ground truth of frames ``steps`` of every sequence, as one :class:`BlockState` (``B T'``)."""
    def take(key: str) -> torch.Tensor:
        value = batch[f"truth_{key}"][:, steps]
        return value.reshape(-1, *value.shape[2:]).cpu().long()

    color = take("block_color")
    return BlockState(take("agent_pos"), take("agent_dir"), take("block_pos"), torch.zeros_like(take("block_pos")),
                      color, color >= 0)


def _renderer(task: WorldModel3DTask) -> FirstPersonRenderer:
    """The ray caster of the task's world (room, view size, field of view), on the CPU."""
    spec = task.model_spec()
    return FirstPersonRenderer(spec["room_size"], spec["view_size"], spec["fov"], "cpu")


def view_masks(task: WorldModel3DTask, batch: dict[str, torch.Tensor], context: int) -> dict[str, torch.Tensor]:
    """Pixel masks ``(B, T', H, W)`` of the views after ``context``, from the ground truth's ray casting: the
    pixels of blocks *in view* at the end of the context; of blocks seen earlier in the context and out of view at
    its end (*memory*: what the model had to remember and move while unseen); of blocks *never seen* in the context
    (no model can know them); *out of view* (memory and never seen together); and the *background*."""
    frames = batch["frames"]
    count, total = frames.shape[:2]
    ids = _renderer(task).block_ids(truth_state(batch, slice(0, total))).view(count, total, *frames.shape[-2:])
    slots = batch["truth_block_color"].shape[-1]

    def seen_in(views: torch.Tensor) -> torch.Tensor:  # (B, t, H, W) block ids -> (B, slots + 1) bool
        seen = torch.zeros(count, slots + 1, dtype=torch.bool)
        return seen.scatter_(1, (views.flatten(1) + 1).clamp_min(0), True)  # slot s -> column s + 1 (0: no block)

    future = ids[:, context:]
    block = future >= 0

    def holds(seen: torch.Tensor) -> torch.Tensor:
        return seen.gather(1, (future + 1).flatten(1)).view_as(future) & block

    at_end, anywhere = holds(seen_in(ids[:, context - 1])), holds(seen_in(ids[:, :context]))
    return {"in_view": at_end, "memory": anywhere & ~at_end, "never_seen": block & ~anywhere,
            "out_of_view": block & ~at_end, "background": ~block}


def painted_over(task: WorldModel3DTask, batch: dict[str, torch.Tensor], context: int,
                 background: torch.Tensor) -> torch.Tensor | None:
    """The views after ``context`` with every block painted over by what lies behind it (the room rendered from the
    ground truth without its blocks), ``(B, T', C, H, W)`` in [0, 1]: the prediction of a model that draws the room
    perfectly and no block, the level a model's block pixels must beat. ``None`` where that rendering does not
    reproduce the recorded background (views of other colours or textures than the block world's plain RGB), checked
    on the ``background`` pixels ``(B, T', H, W)`` (:func:`view_masks`'s)."""
    frames = batch["frames"]
    if frames.shape[2] != 3:
        return None
    state = truth_state(batch, slice(context, frames.shape[1]))
    empty = BlockState(state.agent_pos, state.agent_dir, state.block_pos, state.block_vel, state.block_color,
                       torch.zeros_like(state.active))
    views = _renderer(task).render(empty).permute(0, 3, 1, 2).float().div(255).view(frames[:, context:].shape)
    target = frames[:, context:].float().cpu()
    if (views - target).abs().amax(2)[background].max() > 1.5 / 255:
        return None
    return views


def _masked(error: torch.Tensor, mask: torch.Tensor) -> tuple[list[float | None], float | None]:
    """Mean of ``error (B, T', H, W)`` over ``mask`` per step, and over all steps (``None`` where empty)."""
    counts = mask.sum((0, 2, 3))
    per_step = ((error * mask).sum((0, 2, 3)) / counts.clamp_min(1)).tolist()
    per_step = [value if count else None for value, count in zip(per_step, counts.tolist())]
    total = int(mask.sum())
    return per_step, float((error * mask).sum() / total) if total else None


def evaluate_world_model_3d(task: WorldModel3DTask, model, run: RunDir, seed: int, what) -> dict[str, Any]:
    """The evaluations of the module docstring named in ``what`` (test, length, rollout)."""
    c, results, files = task.config, {}, []
    name = f"{c.model} on {c.data}"
    context, horizons = eval_protocol(c, task.longest_held_out())
    batch = task.dataset("test", seed, seq_len=context + horizons[-1]).sample_batch(c.eval_sequences)
    if batch["frames"].shape[1] <= context:
        raise ValueError(f"the test episodes of {c.data} hold {batch['frames'].shape[1]} views, not more than "
                         f"eval_context = {context}: lower --eval-context or collect longer episodes")
    targets = batch["frames"][:, context:].float()
    predictions = _rollouts(task, model, batch, context)
    steps = predictions.shape[1]
    per_frame = {"mse": mse(predictions, targets), "psnr": psnr(predictions, targets),
                 "ssim": ssim(predictions, targets)}
    per_step = {key: value.mean(0).tolist() for key, value in per_frame.items()}
    first = min(horizons[0], steps)
    trained = min(c.predict, steps)
    if "test" in what:
        test = {key: float(np.mean(values[:first])) for key, values in per_step.items()}
        test.update({f"{key}_per_step": values[:first] for key, values in per_step.items()})
        test.update(sequences=len(targets), context=context, predicted=first)
        if "truth_block_color" in batch:
            error = (predictions - targets).pow(2).mean(2)
            masks = view_masks(task, batch, context)
            for label, mask in masks.items():
                curve, mean = _masked(error[:, :first], mask[:, :first])
                test[f"mse_{label}"], test[f"mse_{label}_per_step"] = mean, curve
            blocks = float(sum(masks[label][:, :first].sum() for label in BLOCK_CLASSES))
            test["block_pixel_shares"] = {label: float(masks[label][:, :first].sum()) / blocks if blocks else None
                                          for label in BLOCK_CLASSES}
            painted = painted_over(task, batch, context, masks["background"])
            if painted is not None:  # the error of drawing the room perfectly and no block, per class
                floor = (painted[:, :first] - targets[:, :first].cpu()).pow(2).mean(2)
                test["painted_over"] = {label: _masked(floor, masks[label][:, :first].cpu())[1]
                                        for label in (*BLOCK_CLASSES, "out_of_view")}
        results["test"] = test
        files.append(plots.curves(run.path / "rollout_metrics.png",
                                  {"MSE x 100": [100 * v for v in per_step["mse"][:first]],
                                   "1 - SSIM": [1 - v for v in per_step["ssim"][:first]]},
                                  xlabel="predicted view", ylabel="error", title=f"Free-running error: {name}"))
    longer = sorted({min(h, steps) for h in horizons[1:]} - {first})
    if "length" in what and longer:
        results["length_generalization"] = {str(context + h): {
            **{key: float(np.mean(values[:h])) for key, values in per_step.items()},
            **{f"{key}_per_step": values[:h] for key, values in per_step.items()},
            "mse_within_trained_horizon": float(np.mean(per_step["mse"][:min(trained, h)])),
            "mse_beyond_trained_horizon": float(np.mean(per_step["mse"][trained:h])) if h > trained else None}
            for h in longer}
        files.append(plots.curves(run.path / "length_generalization.png",
                                  {f"{longer[-1]} predicted views": per_step["mse"][:longer[-1]]},
                                  xlabel="predicted view", ylabel="MSE", marks={"trained": trained},
                                  title=f"Length generalisation: {name}"))
    if "rollout" in what:
        files.append(rollout_gif(task, model, batch, predictions, context, run.path / "rollout.gif"))
    results["files"] = [str(f.relative_to(run.path)) for f in files if f is not None]
    return results


def egocentric_truth(state: BlockState, room_size: int) -> np.ndarray:
    """Pictures ``(N, S, S, 3)`` in [0, 1] of the true scenes around the agent, as the model's map holds them: the
    agent in the middle facing right (+x), its left up; blocks in their colours, the room's floor light, the rest
    dark."""
    size, centre = 2 * room_size + 1, room_size
    count = len(state.agent_dir)
    forward = directions()[state.agent_dir]  # (N, 2)
    left = torch.stack([-forward[:, 1], forward[:, 0]], -1)

    def ego(cells: torch.Tensor) -> torch.Tensor:  # world cells (N, ..., 2) -> (ahead, left)
        offset = cells - state.agent_pos.view(count, *[1] * (cells.dim() - 2), 2)
        shape = [count] + [1] * (cells.dim() - 2)
        return torch.stack([(offset * forward.view(*shape, 2)).sum(-1), (offset * left.view(*shape, 2)).sum(-1)], -1)

    picture = np.full((count, size, size, 3), 0.15)
    grid = torch.stack(torch.meshgrid(torch.arange(room_size), torch.arange(room_size), indexing="xy"), -1)
    floor = ego(grid.reshape(1, -1, 2).expand(count, -1, -1)) + centre
    index = torch.arange(count)[:, None].expand_as(floor[..., 0])
    picture[index.numpy(), (size - 1 - floor[..., 1]).numpy(), floor[..., 0].numpy()] = 0.75
    blocks = ego(state.block_pos) + centre
    shown = state.active.numpy()
    index = torch.arange(count)[:, None].expand_as(blocks[..., 0]).numpy()
    colours = np.asarray(BLOCK_RGB)[state.block_color.clamp_min(0).numpy()]
    picture[index[shown], (size - 1 - blocks[..., 1]).numpy()[shown], blocks[..., 0].numpy()[shown]] = colours[shown]
    picture[:, centre, centre] = 1.0
    return picture


def rollout_gif(task: WorldModel3DTask, model, batch: dict[str, torch.Tensor], predictions: torch.Tensor,
                context: int, path) -> Any:
    """GIF of the first sequence, its ``context`` observed views then the predicted ones (each frame captioned
    which): real view | the model's view (the observed one, then its prediction) | true map | the model's map
    (FloWM models)."""
    first = {key: value[:1] for key, value in batch.items()}
    total = first["frames"].shape[1]
    real = first["frames"][0].permute(0, 2, 3, 1).cpu().numpy()
    rows = {"real": real, "model": np.concatenate([real[:context], predictions[0].permute(0, 2, 3, 1).cpu().numpy()])}
    scale = max(1, real.shape[1] // (2 * task.model_spec()["room_size"] + 1))
    if "truth_block_color" in first:
        truth = egocentric_truth(truth_state(first, slice(0, total)), task.model_spec()["room_size"])
        rows["true map"] = truth.repeat(scale, 1).repeat(scale, 2)
    world = model.world_model
    if hasattr(world, "readout_map"):
        rows["model map"] = _model_maps(world, first, context).repeat(scale, 1).repeat(scale, 2)
    return plots.gif(path, rows, scale=3, observed=context)


@torch.no_grad()
def _model_maps(world, batch: dict[str, torch.Tensor], context: int) -> np.ndarray:
    """The model's maps ``(T, S, S, 3)`` while it observes ``context`` views and then imagines, in the layout of
    :func:`egocentric_truth`: the norm of the velocity-pooled features, scaled to [0, 1]."""
    motions = motion_ids(batch["moves"])
    _, maps = world(batch["frames"][:, :context], motions[:, :context], return_maps=True)
    _, imagined = world.imagine(maps[:, -1], motions[:, context:], return_maps=True)
    pictures = world.readout_map(torch.cat([maps[0], imagined[0]])).flip(1)  # (T, S, S), the agent's left up
    pictures = pictures / pictures.amax().clamp_min(1e-6)
    return pictures[..., None].expand(-1, -1, -1, 3).cpu().numpy()
