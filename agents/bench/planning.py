"""``fernn-rl bench plan``: decisions per second of the batched CEM planner against the naive planner that
imagines one candidate at a time, measured in the same run, rounds interleaved."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from fernn import TranslationFlow, WorldModel
from fernn.agents.bench.reference import NaivePlanner
from fernn.agents.planning import CEMPlanner
from fernn.envs.mnist_world import DIRECTIONS


def bench_plan(*, world_size: int = 50, window_size: int = 32, hidden: int = 8, vmax: int = 1, horizon: int = 6,
               candidates: int = 32, iterations: int = 2, decisions: int = 2, rounds: int = 3, seed: int = 0,
               progress: Callable[[str], None] | None = None) -> list[dict]:
    """Median decisions/s over ``rounds`` of each planner (``decisions`` timed after one warm-up decision), from
    one observed window of a random-weight world model of the given sizes (2 channels: window and target)."""
    torch.manual_seed(seed)
    model = WorldModel(2, hidden, TranslationFlow(vmax), world_size=world_size, window_size=window_size)
    obs = np.random.default_rng(seed).integers(0, 256, (1, window_size, window_size, 2), dtype=np.uint8)
    speeds: dict[str, list[float]] = {"batched (ours)": [], "one candidate at a time": []}
    for _ in range(rounds):
        for name, cls in (("batched (ours)", CEMPlanner), ("one candidate at a time", NaivePlanner)):
            if progress is not None:
                progress(name)
            planner = cls(model, DIRECTIONS, horizon=horizon, candidates=candidates, iterations=iterations,
                          elites=min(4, candidates), seed=seed)
            maps = planner.observe(obs, None).maps
            planner.plan(maps)
            started = time.perf_counter()
            for _ in range(decisions):
                planner.plan(maps)
            speeds[name].append(decisions / (time.perf_counter() - started))
    return [{"planner": name, "decisions_per_s": statistics.median(values), "rounds": values,
             "speed_vs_naive": statistics.median(values) / statistics.median(speeds["one candidate at a time"]),
             "imagined_steps_per_decision": candidates * horizon * iterations} for name, values in speeds.items()]
