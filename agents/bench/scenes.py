"""``fernn-rl bench scenes``: scene-generation throughput of the dataset adapters against the reference
datasets' per-sequence, frame-by-frame generators (:mod:`fernn.agents.bench.reference`), and env step throughput
(single env, Gymnasium's ``SyncVectorEnv`` of 8, and our native vector env of 8), in one run.

Sequences per second count finished float batches ``(B, T, 1, H, W)`` in [0, 1] -- what a training
step consumes -- on the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch

import fernn.envs  # noqa: F401  (registers the ids)
from fernn.envs import FlowingMNISTDataset, MNISTWorldDataset, RotatingMNISTDataset, load_mnist
from fernn.agents.bench.reference import frame_by_frame_rotation, frame_by_frame_translation, frame_by_frame_world


@dataclass
class Throughput:
    """Sequences (or env steps) per second of ours and of the baseline, measured in the same run."""

    task: str
    ours: float
    baseline: float
    baseline_name: str
    unit: str

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline


def _rate(fn: Callable[[], object], count: int, min_seconds: float) -> float:
    """Items per second of ``fn`` (which makes ``count`` items), after one warm-up call."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls * count / elapsed


def bench_generators(batch_size: int = 128, min_seconds: float = 2.0, seed: int = 0,
                     progress: Callable[[str], None] | None = None) -> list[Throughput]:
    """Sequences per second: adapters' ``sample_batch`` vs the frame-by-frame reference generators."""
    say = progress or (lambda _msg: None)
    images = torch.as_tensor(np.array(load_mnist("train", source="embedded").images))
    rng = np.random.default_rng(seed)
    tasks = [
        ("translation: 20 frames, 2 digits, 28x28", FlowingMNISTDataset(seq_len=20, seed=seed),
         lambda n: frame_by_frame_translation(images, n, rng=rng)),
        ("rotation: 20 frames, 2 digits, 40x40", RotatingMNISTDataset(seq_len=20, seed=seed),
         lambda n: frame_by_frame_rotation(images, n, rng=rng)),
        ("MNIST World: 20 frames, 5 digits, world 50, window 32", MNISTWorldDataset(seq_len=20, seed=seed),
         lambda n: frame_by_frame_world(images, n, rng=rng)),
    ]
    results = []
    for task, dataset, naive in tasks:
        say(task)
        ours = _rate(lambda d=dataset: d.sample_batch(batch_size), batch_size, min_seconds)
        baseline = _rate(lambda f=naive: f(batch_size), batch_size, min_seconds)
        results.append(Throughput(task, ours, baseline, "frame-by-frame (reference)", "sequences/s"))
    return results


def _env_rate(make: Callable[[], object], actions: Callable[[object], object], steps: int, per_step: int,
              min_seconds: float) -> float:
    env = make()
    env.reset(seed=0)

    def run() -> None:
        for _ in range(steps):
            out = env.step(actions(env))
            if per_step == 1 and (out[2] or out[3]):
                env.reset()

    rate = _rate(run, steps * per_step, min_seconds)
    env.close()
    return rate


def bench_env_steps(env_ids: tuple[str, ...] = ("FlowingMNIST-v0", "MNISTWorldTrack-v0"), num_envs: int = 8,
                    steps: int = 200, min_seconds: float = 2.0,
                    progress: Callable[[str], None] | None = None) -> list[dict]:
    """Env steps per second: single env, ``SyncVectorEnv`` of ``num_envs``, native vector env of ``num_envs``."""
    say = progress or (lambda _msg: None)
    rows = []
    for env_id in env_ids:
        say(env_id)
        single = gym.make(env_id)
        zero_single = np.zeros(single.action_space.shape, single.action_space.dtype)
        zero_batch = np.zeros((num_envs, *single.action_space.shape), single.action_space.dtype)
        rate = {
            "env": env_id,
            "single": _env_rate(lambda: gym.make(env_id), lambda e: zero_single, steps, 1, min_seconds),
            "sync_vector": _env_rate(lambda: gym.make_vec(env_id, num_envs, vectorization_mode="sync"),
                                     lambda e: zero_batch, steps, num_envs, min_seconds),
            "native_vector": _env_rate(lambda: gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point"),
                                       lambda e: zero_batch, steps, num_envs, min_seconds),
            "num_envs": num_envs,
        }
        rows.append(rate)
    return rows


def throughputs_as_dicts(results: list[Throughput]) -> list[dict]:
    return [{**asdict(r), "ratio": r.ratio} for r in results]
