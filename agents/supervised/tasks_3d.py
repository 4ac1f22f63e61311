"""The first-person (3-D) world-model task: episodes of a first-person agent (``fernn-rl collect --env
dynamic-block-world``) whose moves are its self-motions ``(turn, forward)``.

Models (``--model``):

=============================  =====================================================================================
``fernn-3d``                   :class:`fernn.WorldModel3D`: FloWM's egocentric map, five cardinal velocity channels
``fernn-3d-no-velocities``     the ablation with one (still) velocity channel
``fernn-3d-no-self-motion``    the ablation whose map does not turn or walk with the agent (motions as an input)
``rssm``                       :class:`fernn.rssm.RSSM`, a DreamerV3-style recurrent state-space model (a GRU
                               state of ``4 hidden`` units)
=============================  =====================================================================================

Every model is trained on the same windows with the same pixel loss: ``context`` views observed, ``predict`` views
imagined free-running from the recorded motions, MSE against the true views (teacher forcing per the config); the
RSSM adds its own ELBO on the observed views, without which it has no posterior to filter with.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fernn.egocentric import CARDINAL_VELOCITIES, EgocentricFlow, motion_ids
from fernn.rssm import RSSM
from fernn.world_model_3d import WorldModel3D
from fernn.agents.supervised.config import TrainConfig
from fernn.agents.supervised.tasks import STATE_BYTES, Task, TrajectoryData

motions_of = motion_ids  # the name this module has exported


def _flowm(task: WorldModel3DTask, flow: EgocentricFlow | None = None, self_motion: bool = True) -> nn.Module:
    spec = task.model_spec()
    return WorldModel3D(spec["in_channels"], task.config.hidden, flow, room_size=spec["room_size"],
                        view_size=spec["view_size"], fov=spec["fov"], self_motion=self_motion)


def _rssm(task: WorldModel3DTask) -> nn.Module:
    spec = task.model_spec()
    return RSSM(spec["in_channels"], spec["view_size"], deterministic=RSSM_UNITS_PER_HIDDEN * task.config.hidden)


#: ``--hidden`` sizes the RSSM's GRU state: ``4 hidden`` units (the default hidden 16 gives its 64)
RSSM_UNITS_PER_HIDDEN = 4


def build_world_model_3d(task: WorldModel3DTask) -> nn.Module:
    """The world model of ``task.config.model``, sized by ``task.model_spec()``."""
    return MODELS_3D[task.config.model](task)


MODELS_3D = {
    "fernn-3d": _flowm,
    "fernn-3d-no-velocities": lambda task: _flowm(task, EgocentricFlow(0)),
    "fernn-3d-no-self-motion": lambda task: _flowm(task, self_motion=False),
    "rssm": _rssm,
}


def recorded_geometry(meta: dict[str, Any], path: str) -> tuple[int, float]:
    """The room size and field of view of the first-person world a file was collected in: its declaration
    (``meta["first_person"]``, :mod:`fernn.envs.first_person_world`) or, for block-world files that predate it, the
    env's kwargs (the block world's defaults where not given); checked as every declaration is."""
    from fernn.envs.block_scenes import ACTION_MOTIONS
    from fernn.envs.first_person_world import FirstPersonGeometry

    if "first_person" in meta:
        geometry = FirstPersonGeometry.from_dict(meta["first_person"], path)
        return geometry.room_size, geometry.fov
    if not str(meta.get("env_id") or "").split(":")[-1].startswith("DynamicBlockWorld"):
        raise ValueError(f"{path} records first-person self-motion but not the world's room and field of view; "
                         "collect it from an env that declares them (fernn.envs.FirstPersonWorld, the MiniWorld "
                         "adapter: docs/your_env.md)")
    kwargs = {} if meta.get("env_kwargs") is None else meta["env_kwargs"]
    if isinstance(kwargs, dict):
        kwargs = {"action_motions": ACTION_MOTIONS, "room_size": kwargs.get("room_size", 16),
                  "fov": kwargs.get("fov", 60.0)}
    geometry = FirstPersonGeometry.from_dict(kwargs, path, entry="env_kwargs")
    return geometry.room_size, geometry.fov


def check_recorded_truth(file: Any, room_size: int, path: str) -> None:
    """Every episode's recorded ground truth (when the file has any) checked before training: what the evaluation
    reads to tell the blocks in view from those out of it (:func:`fernn.envs.block_world.check_ground_truth`)."""
    from fernn.envs.block_world import check_ground_truth

    recorded = [key for key in file.episode(0) if key.startswith("truth_")]
    if not recorded:
        return
    for index in range(len(file.lengths)):
        truth = {key[len("truth_"):]: file.field(key, index) for key in recorded}
        check_ground_truth(truth, room_size, f"{path}, episode {index}")  # lengths: checked with the file


class ContextRollout3D(nn.Module):
    """A first-person world model whose ``forward`` is one training step's work (so that DDP synchronises its
    gradients): the rollout after the context and, for a model with an ELBO (the RSSM), that loss."""

    def __init__(self, world_model: nn.Module) -> None:
        super().__init__()
        self.world_model = world_model

    def forward(self, frames: torch.Tensor, motions: torch.Tensor, context: int, targets: torch.Tensor | None = None,
                teacher_forcing: float = 0.0, elbo: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        predictions = self.world_model.rollout(frames[:, :context], motions[:, :context], motions[:, context:],
                                               targets=targets, teacher_forcing=teacher_forcing)
        extra = self.world_model.elbo_loss(frames, motions) if elbo and hasattr(self.world_model, "elbo_loss") else None
        return predictions, extra


class WorldModel3DTask(Task):
    """FloWM-3D, its ablations and the RSSM on first-person episodes (see the module docstring)."""

    name, kind = "trajectories", "world-model-3d"
    models: ClassVar[dict] = {name: (lambda task: ContextRollout3D(build_world_model_3d(task))) for name in MODELS_3D}
    velocity_grid = False
    evaluations = ("test", "length", "rollout")
    unused = {"vmax": "FloWM-3D's velocity channels are its five cardinal ones, fixed by the egocentric flow",
              "velocities": "FloWM-3D's velocity channels are its five cardinal ones, fixed by the egocentric flow",
              "world_size": "the map is the room, 2 room_size + 1 cells per side, from the file's world",
              "decoder_layers": "the first-person models' decoders have a fixed depth"}
    defaults = {"hidden": 16, "batch_size": 8, "context": 16, "predict": 16}

    def __init__(self, config: TrainConfig, device: torch.device, data: TrajectoryData) -> None:
        self.data = data
        super().__init__(config, device)
        height, width = data.frame_hw
        if height != width:
            raise ValueError(f"the first-person world model takes square views; {config.data} holds {height}x{width}")
        if height % 4:
            raise ValueError(f"the first-person world model takes views whose side is a multiple of 4; {config.data} "
                             f"holds {height}x{width}")
        if config.model == "rssm" and height & (height - 1):
            raise ValueError(f"the RSSM takes views whose side is a power of two; {config.data} holds {height}x{width}")
        self.room_size, self.fov = recorded_geometry(data.file.meta, config.data)
        if data.moves is None:  # the world is declared, the motions carried out are not recorded
            if config.model != "rssm":
                raise ValueError(f"{config.model} moves its map by the motion each step carried out "
                                 f"(info['self_motion']), which {config.data} does not record: collect it from an env "
                                 "that reports it (fernn.envs.FirstPersonWorld does; docs/your_env.md), or train "
                                 "--model rssm, which takes the actions alone")
            from fernn.envs.first_person_world import FirstPersonGeometry

            motions = FirstPersonGeometry.from_dict(data.file.meta["first_person"], config.data).action_motions
            for part in data.parts.values():
                part.moves_from_actions(motions)
        self.check_evaluation_fits()
        check_recorded_truth(data.file, self.room_size, config.data)

    def check_evaluation_fits(self) -> None:
        """Refuse, before training, an evaluation the held-out episodes cannot hold: ``eval_context`` observed views
        and the longest of ``eval_horizons`` predicted ones."""
        from fernn.agents.supervised.evaluation_3d import eval_protocol

        longest = self.longest_held_out()
        context, horizons = eval_protocol(self.config, longest)
        if context + horizons[-1] > longest:
            origin = f" (set by --preset {self.config.preset})" if self.config.preset else ""
            raise ValueError(f"the evaluation{origin} observes {context} views (--eval-context, default --context) and "
                             f"predicts up to {horizons[-1]} (--eval-horizons): "
                             f"{context + horizons[-1]} views, but the longest held-out episode of {self.config.data} "
                             f"has {longest}; lower --eval-context / --eval-horizons (or --context / --predict) or collect longer episodes "
                             "(--max-steps)")

    def longest_held_out(self) -> int:
        """Views in the longest held-out (test) episode."""
        return int(self.data.parts["test"].lengths.max()) + 1

    @classmethod
    def sizes(cls, config: TrainConfig, data: TrajectoryData, device: torch.device) -> dict[str, int]:
        longest = int(data.file.lengths.max()) + 1
        context = config.context or min(cls.defaults["context"], max(1, longest // 2))
        predict = config.predict or min(cls.defaults["predict"], max(1, longest - context))
        return {**cls.defaults, "context": context, "predict": predict}

    def describe(self) -> str:
        return f"{self.config.data} (first-person episodes: the 3-D world model)"

    def model_spec(self) -> dict[str, Any]:
        """The view and room the model was built for (saved in the checkpoints; a planner's env must match)."""
        return {"in_channels": self.data.channels, "view_size": self.data.frame_hw[0], "room_size": self.room_size,
                "fov": self.fov}

    def step_memory(self) -> float:
        c, spec = self.config, self.model_spec()
        size = 2 * spec["room_size"] + 1
        velocities = 1 if c.model == "fernn-3d-no-velocities" else len(CARDINAL_VELOCITIES)
        maps = c.batch_size * (c.context + c.predict) * velocities * c.hidden * size * size
        views = c.batch_size * (c.context + c.predict) * 48 * (spec["view_size"] // 2) ** 2  # the encoder's features
        return STATE_BYTES * 3 * (maps + views)  # each step's map, its moved and mixed copies

    def dataset(self, split: str, seed: int, **overrides: Any):
        return self.data.dataset(self.config, split, seed, overrides.get("seq_len"))

    def predict(self, model: nn.Module, batch: dict[str, torch.Tensor], teacher_forcing: float = 0.0,
                elbo: bool = False, context: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predicted views ``(B, T - context, C, H, W)`` after ``context`` observed ones (default: the config's) and,
        with ``elbo``, the model's extra loss (the RSSM's KL; ``None`` for FloWM)."""
        frames, context = batch["frames"], context or self.config.context
        targets = frames[:, context:] if teacher_forcing > 0 else None
        return model(frames, motion_ids(batch["moves"]), context, targets, teacher_forcing, elbo)

    def loss(self, model, batch, progress):
        forcing = self.teacher_forcing(progress)
        predictions, elbo = self.predict(model, batch, forcing, elbo=True)
        loss = F.mse_loss(predictions.float(), batch["frames"][:, self.config.context:])
        return (loss if elbo is None else loss + elbo), {"teacher_forcing": forcing}

    @torch.no_grad()
    def validate(self, model, dataset, batches):
        total = 0.0
        for _ in range(batches):
            batch = dataset.sample_batch(self.config.batch_size)
            predictions, _ = self.predict(model, batch)
            total += float(F.mse_loss(predictions.float(), batch["frames"][:, self.config.context:]))
        return {"val_mse": total / batches}

    def evaluate(self, model, run, seed, what):
        from fernn.agents.supervised.evaluation_3d import evaluate_world_model_3d

        return evaluate_world_model_3d(self, model, run, seed, what)
