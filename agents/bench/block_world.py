"""``fernn-rl bench block-world``: env steps per second of the first-person block world (its native vector env,
every scene stepped and rendered in one batched call, and the single env) against MiniWorld, the renderer FloWM's
block world was made with (pyglet + OpenGL, one env per process), measured in the same run, rounds interleaved.

Three comparisons, on equal resources first:

* **equal envs and cores**: the vector env of ``num_envs`` scenes with torch on every core, against ``num_envs``
  MiniWorld envs in worker processes (Gymnasium's ``AsyncVectorEnv``, one process per env, as SB3's
  ``SubprocVecEnv`` runs them) on the same cores;
* **one core each**: the vector env on one thread against one MiniWorld env in one process;
* **one env each**: the single block-world env against one MiniWorld env.

The peer is ``MiniWorld-PutNext-v0`` at the same image size, stepped with random actions, rendering headless
(``PYGLET_HEADLESS=1``: EGL, Mesa's software rasteriser without a GPU). It is measured only when the ``miniworld``
package is installed and can render; otherwise its rows say why.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

import fernn.envs  # noqa: F401  (registers the ids)

PEER_ID = "MiniWorld-PutNext-v0"


def _steps_per_second(step: Callable[[], None], steps: int, per_step: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * per_step / (time.perf_counter() - start)


def _ours(num_envs: int, obs_size: int, device: str, seed: int) -> Callable[[int], float]:
    """A timer of the native vector env (random actions drawn beforehand)."""
    vector = gym.make_vec("DynamicBlockWorld-v0", num_envs=num_envs, obs_size=obs_size, device=device,
                          vectorization_mode="vector_entry_point")
    vector.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 4, (4096, num_envs))

    def measure(steps: int) -> float:
        counter = iter(range(10 ** 9))
        return _steps_per_second(lambda: vector.step(actions[next(counter) % len(actions)]), steps, num_envs)

    measure(10)  # warm-up
    return measure


def _single(obs_size: int, device: str, seed: int) -> Callable[[int], float]:
    env = gym.make("DynamicBlockWorld-v0", obs_size=obs_size, device=device)
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 4, 4096)

    def measure(steps: int) -> float:
        counter = iter(range(10 ** 9))

        def step() -> None:
            _, _, terminated, truncated, _ = env.step(int(actions[next(counter) % len(actions)]))
            if terminated or truncated:
                env.reset()

        return _steps_per_second(step, steps, 1)

    measure(10)
    return measure


def peer_timer(obs_size: int, seed: int) -> tuple[Callable[[int], float] | None, str]:
    """A timer of MiniWorld at ``obs_size`` and its description, or ``(None, why it cannot be measured)``."""
    os.environ.setdefault("PYGLET_HEADLESS", "1")
    try:
        import miniworld  # noqa: F401  (registers MiniWorld's ids)
    except ImportError:
        return None, "miniworld is not installed (pip install miniworld)"
    except Exception as error:  # noqa: BLE001 - pyglet opens a window at import when it is not headless
        return None, f"MiniWorld could not start here ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    try:
        env = gym.make(PEER_ID, obs_width=obs_size, obs_height=obs_size)
        env.reset(seed=seed)
    except Exception as error:  # noqa: BLE001 - any failure to open a GL context means: not measurable here
        return None, f"MiniWorld could not render here ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    env.action_space.seed(seed)

    def measure(steps: int) -> float:
        def step() -> None:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()

        return _steps_per_second(step, steps, 1)

    measure(10)
    version = getattr(__import__("miniworld"), "__version__", "?")
    return measure, f"MiniWorld {version} {PEER_ID}, one env, headless EGL"


def _with_threads(timer: Callable[[int], float], threads: int) -> Callable[[int], float]:
    """``timer`` run with torch on ``threads`` threads (the previous count restored after)."""
    import torch

    def measure(steps: int) -> float:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return timer(steps)
        finally:
            torch.set_num_threads(before)

    return measure


def _peer_workers(num_envs: int, obs_size: int, seed: int) -> Callable[[int], float]:
    """A timer of ``num_envs`` MiniWorld envs in worker processes (``AsyncVectorEnv``, spawned: an OpenGL context
    is never forked)."""
    vector = gym.vector.AsyncVectorEnv([lambda: gym.make(f"miniworld:{PEER_ID}", obs_width=obs_size,
                                                         obs_height=obs_size)
                                        for _ in range(num_envs)], context="spawn")
    vector.reset(seed=seed)
    vector.action_space.seed(seed)

    def measure(steps: int) -> float:
        return _steps_per_second(lambda: vector.step(vector.action_space.sample()), steps, num_envs)

    measure(5)
    measure.close = vector.close
    return measure


def bench_block_world(*, num_envs: int = 16, obs_size: int = 64, device: str = "cpu", steps: int = 200,
                      rounds: int = 3, seed: int = 0, peer: bool = True, workers: bool = True,
                      progress: Callable[[str], None] | None = None) -> dict:
    """Env steps per second of the vector env (on one thread and on every core), the single env and MiniWorld
    (when measurable: one env, and ``num_envs`` in worker processes unless ``workers=False``), measured in
    ``rounds`` interleaved rounds; the medians and the ratios of the module docstring's comparisons."""
    say = progress or (lambda _message: None)
    cores = os.cpu_count() or 1
    vector = _ours(num_envs, obs_size, device, seed)
    timers = {"vector": _with_threads(vector, 1), "vector_all_cores": _with_threads(vector, cores),
              "single": _with_threads(_single(obs_size, device, seed), 1)}
    peer_note = "not measured (--no-peer)"
    if peer:
        timer, peer_note = peer_timer(obs_size, seed)
        if timer is not None:
            timers["miniworld"] = timer
            if workers:
                say(f"starting {num_envs} MiniWorld worker processes")
                timers["miniworld_workers"] = _peer_workers(num_envs, obs_size, seed)
    counts = {"vector": max(1, steps // 4), "vector_all_cores": max(1, steps // 4), "single": steps,
              "miniworld": steps, "miniworld_workers": max(1, steps // 4)}
    rates: dict[str, list[float]] = {name: [] for name in timers}
    for round_index in range(rounds):
        for name, timer in list(timers.items()):
            if name not in timers:  # a peer that failed earlier in this round
                continue
            say(f"round {round_index + 1}/{rounds}: {name}")
            try:
                rates[name].append(timer(counts[name]))
            except Exception as error:  # noqa: BLE001 - the peer is someone else's code: its failure is reported
                if not name.startswith("miniworld"):
                    raise
                for peer_name in [n for n in timers if n.startswith("miniworld")]:
                    getattr(timers[peer_name], "close", lambda: None)()
                    del timers[peer_name], rates[peer_name]  # the block world's own figures are kept
                peer_note = (f"MiniWorld failed during round {round_index + 1} ({type(error).__name__}: "
                             f"{str(error).splitlines()[0][:120] if str(error) else 'no message'}); not measured")
    for timer in timers.values():
        getattr(timer, "close", lambda: None)()
    median = {name: statistics.median(values) for name, values in rates.items()}

    def ratio(ours: str, theirs: str) -> float | None:
        return median[ours] / median[theirs] if theirs in median else None

    result = {"num_envs": num_envs, "obs_size": obs_size, "device": device, "rounds": rounds, "cores": cores,
              "vector_steps_per_s": median["vector"], "vector_all_cores_steps_per_s": median["vector_all_cores"],
              "single_steps_per_s": median["single"], "miniworld_steps_per_s": median.get("miniworld"),
              "miniworld_workers_steps_per_s": median.get("miniworld_workers"), "peer": peer_note,
              "all_rounds": rates}
    result.update({"equal_envs_and_cores": ratio("vector_all_cores", "miniworld_workers"),
                   "vector_vs_miniworld": ratio("vector", "miniworld"), "single_vs_miniworld": ratio("single",
                                                                                                   "miniworld")})
    return result
