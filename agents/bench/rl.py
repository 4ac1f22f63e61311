"""``fernn-rl bench rl``: environment steps per second during rollout collection and PPO updates per
second for each RL policy, at the README's settings (n_steps 128, 8 envs, MNISTWorldTrack-v0), in one run."""

from __future__ import annotations

import time
from collections.abc import Callable

from fernn.agents.rl import RL_POLICIES, RLConfig, make_model, make_vec_env  # first: names the [rl] extra
from stable_baselines3.common.callbacks import CallbackList  # noqa: I001


def bench_rl(*, n_envs: int = 8, n_steps: int = 128, fernn_hidden: int = 16, vmax: int = 2, repeats: int = 2,
             progress: Callable[[str], None] | None = None) -> list[dict]:
    """One row per policy: collection steps/s, PPO updates/s (one update = all epochs over one rollout),
    parameter count."""
    say = progress or (lambda _msg: None)
    rows = []
    for policy in RL_POLICIES:
        say(policy)
        config = RLConfig(policy=policy, algo="recurrent-ppo" if policy in ("fernn", "cnn-lstm") else "ppo",
                          n_envs=n_envs, n_steps=n_steps, batch_size=min(256, n_envs * n_steps), fernn_hidden=fernn_hidden,
                          vmax=vmax, device="cpu")
        envs = make_vec_env(config)
        model = make_model(config, envs)
        model._setup_learn(n_envs * n_steps * (repeats + 1))
        callback = CallbackList([])
        callback.init_callback(model)
        collect, update = [], []
        for _ in range(repeats + 1):  # the first round warms up
            start = time.perf_counter()
            model.collect_rollouts(model.env, callback, model.rollout_buffer, n_steps)
            collect.append(time.perf_counter() - start)
            start = time.perf_counter()
            model.train()
            update.append(time.perf_counter() - start)
        envs.close()
        rows.append({"policy": policy, "collect_steps_per_s": n_envs * n_steps * repeats / sum(collect[1:]),
                     "updates_per_s": repeats / sum(update[1:]),
                     "parameters": sum(p.numel() for p in model.policy.parameters())})
    return rows
