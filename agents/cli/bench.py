"""``fernn-rl bench``: benchmarks, each a ratio against a baseline measured in the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from fernn.agents.cli.console import check_json_path, console, fail, guarded, parse_int_list, write_json_flag
from fernn.flows import grid_velocities

bench_app = typer.Typer(help="Benchmarks: figures as ratios against baselines measured in the same run.",
                        no_args_is_help=True)


@bench_app.callback()
def keep_benchmarks_warm() -> None:
    """Typer runs this before every ``bench`` subcommand: benchmarks run with large CPU allocations kept warm
    (see fernn.allocator), as training does."""
    from fernn.allocator import keep_allocations_warm

    keep_allocations_warm()


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "-"


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            fail(f"--device {device} asked for CUDA, but torch sees no CUDA device (torch {torch.__version__})")
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def _report_timings(title: str, results: list, note: str, json_out: Optional[Path], meta: dict) -> None:
    """Print a table of step timings with ratios against the first row of each group; optionally JSON."""
    import torch

    from fernn.agents.bench.models import timings_as_dicts

    table = Table(title=f"{title} ({meta['device']}, torch {torch.__version__})")
    for column in ("V", "implementation", "batch", "train step s", "forward s", "saved for backward MiB", "loss",
                   "train step vs ours"):
        table.add_column(column, justify="left" if column == "implementation" else "right")
    ours: dict[str, float] = {}
    for r in results:
        ours.setdefault(r.group, r.train_s)
        table.add_row(str(r.velocities), r.name, str(r.batch), f"{r.train_s:.3f}",
                      "-" if r.forward_s is None else f"{r.forward_s:.3f}", f"{r.saved_mib:.0f}",
                      f"{r.final_loss:.4f}", _ratio(r.train_s, ours[r.group]))
    console.print(table)
    console.print(f"[dim]{note}[/]")
    write_json_flag(json_out, {**meta, "torch": torch.__version__, "results": timings_as_dicts(results)})


def _resolved(value: str) -> str:
    """``--device`` as the benchmarks take it: ``auto`` is the CUDA device when there is one, else the CPU (the one
    resolver of every command, :func:`fernn.devices.resolve_device`)."""
    from fernn.devices import resolve_device

    try:
        return str(resolve_device(value, name="--device"))
    except ValueError as error:
        fail(str(error))


DEVICE_OPTION = typer.Option("cpu", "--device", callback=_resolved, help="cpu, cuda, cuda:N or auto.")
JSON_OPTION = typer.Option(None, "--json", help="Also write the figures to this JSON file (atomically).")
ROUNDS_OPTION = typer.Option(1, "--rounds", min=1, help="Measure every row this many times, round-robin, and report "
                                                        "the median over rounds (drift then slows all rows alike).")
FRESH_OPTION = typer.Option(True, "--fresh-processes/--in-process", metavar="",
                            help="Measure every row in a fresh process (default: no row inherits another's heap) or "
                                 "all in this one (starts seconds faster; for small sizes).")


@bench_app.command("step")
@guarded
def bench_step_command(
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1, help="Sequences per batch."),
    image_size: int = typer.Option(28, "--image-size", min=3, help="Frame height and width (the paper: 28)."),
    hidden: int = typer.Option(32, "--hidden", min=1, help="Hidden channels per velocity channel (the paper: 128)."),
    vmax: str = typer.Option("0,1,2", "--vmax", help="Velocity grid radii to time (V = (2 vmax + 1)^2)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed repeats per measurement (median reported)."),
    rounds: int = ROUNDS_OPTION,
    device: str = DEVICE_OPTION,
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", metavar="", help="Also time the step under bf16 autocast."),
    grnn_floor: bool = typer.Option(True, "--grnn-floor/--no-grnn-floor", metavar="",
                                    help="Also time G-RNN at batch B x V (the literal floor)."),
    relaxed: int = typer.Option(0, "--relaxed", min=0, help="Also time the relaxed FERNN with this many filter banks "
                                                            "(0: don't)."),
    fresh_processes: bool = FRESH_OPTION,
    json_out: Optional[Path] = JSON_OPTION,
) -> None:
    """Translation predictor: one training step (10 context + 10 predicted frames, MSE, backward, Adam).

    Compares the FERNN predictor with the paper's roll-loop implementation and with two floors, all
    measured in this run; prints seconds, memory saved for backward and ratios.
    """
    check_json_path(json_out)
    from fernn.agents.bench.models import bench_step

    vmaxes = parse_int_list("--vmax", vmax)
    if any(v < 0 for v in vmaxes):
        fail(f"--vmax values must be >= 0; got {vmax!r}")
    name = _device_name(device)
    with console.status("benchmarking") as status:
        results = bench_step(batch_size=batch_size, image_size=image_size, hidden_channels=hidden, vmaxes=vmaxes,
                             repeats=repeats, rounds=rounds, device=device, bf16=bf16, grnn_floor=grnn_floor,
                             relaxed=relaxed, fresh_processes=fresh_processes,
                             progress=lambda msg: status.update(f"benchmarking {msg}"))
    _report_timings(f"Predictor step: batch {batch_size}, {image_size}x{image_size}, hidden {hidden}, 10+10 frames",
                    results, "'vs ours' > 1 means slower than ours. Targets at V = 25: roll-loop >= 2x, "
                    "fernn <= 1.15x of the floor (i.e. floor column >= 0.87x)"
                    + ("; relaxed <= 1.5x of fernn." if relaxed else "."), json_out,
                    {"benchmark": "step", "device": name, "batch_size": batch_size, "image_size": image_size,
                     "hidden": hidden, "repeats": repeats, "rounds": rounds, "relaxed": relaxed})


@bench_app.command("rotation")
@guarded
def bench_rotation_command(
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1, help="Sequences per batch."),
    image_size: int = typer.Option(28, "--image-size", min=3, help="Digit frame size before padding (paper: 28)."),
    pad: int = typer.Option(6, "--pad", min=0, help="Zero padding on each side (paper: 6, 28 -> 40 px)."),
    hidden: str = typer.Option("32,8", "--hidden", help="Regular C_N fields per velocity channel, one group of "
                                                        "rows each (paper: 32; 8 shows a transport-bound size)."),
    group_order: int = typer.Option(8, "--group-order", min=1, help="N of the rotation group C_N (paper: 8)."),
    angular_velocities: str = typer.Option("-40,-30,-20,-10,0,10,20,30,40", "--angular-velocities",
                                           help="Degrees per step, one velocity channel each (paper: FERNN-V4^R)."),
    context: int = typer.Option(5, "--context", min=1, help="Context frames (paper: 10; 5 keeps a step in RAM)."),
    predicted: int = typer.Option(5, "--predicted", min=1, help="Predicted frames (paper: 10)."),
    repeats: int = typer.Option(2, "--repeats", min=1, help="Timed repeats per measurement (median reported)."),
    rounds: int = ROUNDS_OPTION,
    allocator: str = typer.Option("warm", "--allocator", help="warm (large allocations kept, as fernn-rl train "
                                                              "runs) or default (glibc's defaults)."),
    device: str = DEVICE_OPTION,
    fresh_processes: bool = FRESH_OPTION,
    json_out: Optional[Path] = JSON_OPTION,
) -> None:
    """Rotation predictor: our batched rotation step against the per-velocity grid_sample loop, and the
    transport alone."""
    check_json_path(json_out)
    from fernn.agents.bench.models import bench_rotation

    velocities = parse_int_list("--angular-velocities", angular_velocities)
    widths = parse_int_list("--hidden", hidden)
    if any(w < 1 for w in widths):
        fail(f"--hidden values must be >= 1; got {hidden!r}")
    if allocator not in ("warm", "default"):
        fail(f"--allocator must be warm or default; got {allocator!r}")
    name = _device_name(device)
    with console.status("benchmarking") as status:
        results = bench_rotation(batch_size=batch_size, image_size=image_size, pad=pad, hidden_channels=widths,
                                 group_order=group_order, angular_velocities=velocities, context=context,
                                 predicted=predicted, repeats=repeats, rounds=rounds,
                                 device=device, warm_allocations=allocator == "warm",
                                 fresh_processes=fresh_processes,
                                 progress=lambda msg: status.update(f"benchmarking {msg}"))
    size = image_size + 2 * pad
    _report_timings(f"Rotation predictor step: batch {batch_size}, {size}x{size}, C_{group_order} fields, "
                    f"{context}+{predicted} frames, {allocator} allocator", results,
                    "Target at 9 velocities: the grid_sample loop >= 1.5x our training step; the no-flow floor "
                    "is what the convolutions alone cost; 'transport' rows time the rotations alone.", json_out,
                    {"benchmark": "rotation", "device": name, "batch_size": batch_size, "image_size": size,
                     "hidden_fields": widths, "group_order": group_order, "frames": [context, predicted],
                     "allocator": allocator, "repeats": repeats, "rounds": rounds})


@bench_app.command("world-model")
@guarded
def bench_world_model_command(
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1, help="Sequences per batch."),
    world_size: int = typer.Option(50, "--world-size", min=1, help="Side of the latent map (FloWM: 50)."),
    window_size: int = typer.Option(32, "--window-size", min=1, help="Side of an observation (FloWM: 32)."),
    hidden: int = typer.Option(64, "--hidden", min=1, help="Hidden channels per velocity channel (FloWM: 64)."),
    vmax: int = typer.Option(2, "--vmax", min=0, help="Velocity grid radius (FloWM-V2: 2, 25 channels)."),
    frames: int = typer.Option(8, "--frames", min=2, help="Frames per sequence (FloWM trains on 50; 8 keeps a "
                                                          "step of the reference loop in RAM)."),
    max_action: int = typer.Option(10, "--max-action", min=0, help="Largest |dx|, |dy| per step (FloWM: 10)."),
    repeats: int = typer.Option(2, "--repeats", min=1, help="Timed repeats per measurement (median reported)."),
    rounds: int = ROUNDS_OPTION,
    device: str = DEVICE_OPTION,
    fresh_processes: bool = FRESH_OPTION,
    json_out: Optional[Path] = JSON_OPTION,
) -> None:
    """FloWM world model: our fused velocity+action gather against the per-sample roll loop."""
    check_json_path(json_out)
    from fernn.agents.bench.models import bench_world_model

    if window_size > world_size:
        fail(f"--window-size must be <= --world-size; got {window_size} > {world_size}")
    name = _device_name(device)
    with console.status("benchmarking") as status:
        results = bench_world_model(batch_size=batch_size, world_size=world_size, window_size=window_size,
                                    hidden_channels=hidden, vmax=vmax, frames=frames, max_action=max_action,
                                    repeats=repeats, rounds=rounds, device=device,
                                    fresh_processes=fresh_processes,
                                    progress=lambda msg: status.update(f"benchmarking {msg}"))
    _report_timings(f"World-model step: batch {batch_size}, world {world_size}, window {window_size}, hidden {hidden}, "
                    f"{frames} frames", results, "Target: the per-sample loop >= 3x our training step.", json_out,
                    {"benchmark": "world-model", "device": name, "batch_size": batch_size, "world_size": world_size,
                     "window_size": window_size, "hidden": hidden, "frames": frames, "repeats": repeats,
                     "rounds": rounds})


@bench_app.command("scenes")
@guarded
def bench_scenes_command(
    batch_size: int = typer.Option(128, "--batch-size", "-b", min=1, help="Sequences per generated batch."),
    seconds: float = typer.Option(2.0, "--seconds", min=0.1, help="Minimum timing window per measurement."),
    num_envs: int = typer.Option(8, "--num-envs", min=1, help="Envs in the vector-env measurements."),
    env_steps: bool = typer.Option(True, "--env-steps/--no-env-steps", metavar="", help="Also time env steps."),
    json_out: Optional[Path] = JSON_OPTION,
) -> None:
    """Scene generation: the dataset adapters against the reference's frame-by-frame generators, and env
    steps per second (single env, SyncVectorEnv, native vector env), measured in one run on the CPU."""
    check_json_path(json_out)
    import torch

    from fernn.agents.bench.scenes import bench_env_steps, bench_generators, throughputs_as_dicts

    with console.status("benchmarking") as status:
        generators = bench_generators(batch_size, seconds, progress=lambda msg: status.update(f"generating {msg}"))
        steps = bench_env_steps(num_envs=num_envs, min_seconds=seconds,
                                progress=lambda msg: status.update(f"stepping {msg}")) if env_steps else []
    device = f"CPU, {torch.get_num_threads()} threads"
    table = Table(title=f"Scene generation, batch {batch_size} ({device}, torch {torch.__version__})")
    for column in ("scenes", "ours (sequences/s)", "frame-by-frame reference (sequences/s)", "ours / reference"):
        table.add_column(column, justify="left" if column == "scenes" else "right")
    for r in generators:
        table.add_row(r.task, f"{r.ours:,.0f}", f"{r.baseline:,.0f}", f"{r.ratio:.1f}x")
    console.print(table)
    console.print("[dim]Target: translation >= 20x the frame-by-frame generator.[/]")
    if steps:
        envs = Table(title=f"Env steps per second ({device})")
        for column in ("env", "single env", f"SyncVectorEnv x{num_envs}", f"native vector x{num_envs}",
                       "native / sync"):
            envs.add_column(column, justify="left" if column == "env" else "right")
        for row in steps:
            envs.add_row(row["env"], f"{row['single']:,.0f}", f"{row['sync_vector']:,.0f}",
                         f"{row['native_vector']:,.0f}", f"{row['native_vector'] / row['sync_vector']:.1f}x")
        console.print(envs)
    write_json_flag(json_out, {"benchmark": "scenes", "device": device, "torch": torch.__version__,
                           "batch_size": batch_size, "generators": throughputs_as_dicts(generators),
                           "env_steps": steps})


@bench_app.command("rl")
@guarded
def bench_rl_command(
    n_envs: int = typer.Option(8, "--n-envs", min=1, help="Parallel envs."),
    n_steps: int = typer.Option(128, "--n-steps", min=1, help="Rollout length per env."),
    hidden: int = typer.Option(16, "--hidden", min=1, help="FERNN hidden channels per velocity channel."),
    vmax: int = typer.Option(2, "--vmax", min=0, help="FERNN velocity grid radius (2: 25 channels)."),
    repeats: int = typer.Option(2, "--repeats", min=1, help="Timed rollout + update rounds after a warm-up."),
    json_out: Optional[Path] = JSON_OPTION,
) -> None:
    """RL on MNISTWorldTrack-v0: environment steps/s while collecting rollouts and PPO updates/s, per policy."""
    check_json_path(json_out)
    import torch

    from fernn.agents.bench.rl import bench_rl

    with console.status("benchmarking") as status:
        rows = bench_rl(n_envs=n_envs, n_steps=n_steps, fernn_hidden=hidden, vmax=vmax, repeats=repeats,
                        progress=lambda msg: status.update(f"benchmarking {msg}"))
    device = f"CPU, {torch.get_num_threads()} threads"
    table = Table(title=f"RL on MNISTWorldTrack-v0: {n_envs} envs x {n_steps} steps ({device})")
    for column in ("policy", "collection env steps/s", "PPO updates/s", "parameters"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in rows:
        table.add_row(row["policy"], f"{row['collect_steps_per_s']:,.0f}", f"{row['updates_per_s']:.3f}",
                      f"{row['parameters']:,}")
    console.print(table)
    write_json_flag(json_out, {"benchmark": "rl", "device": device, "n_envs": n_envs, "n_steps": n_steps,
                           "rows": rows})


@bench_app.command("plan")
@guarded
def bench_plan_command(
    world_size: int = typer.Option(50, "--world-size", min=1, help="Side of the world model's map."),
    window_size: int = typer.Option(32, "--window-size", min=1, help="Side of an observation."),
    hidden: int = typer.Option(8, "--hidden", min=1, help="Hidden channels per velocity channel."),
    vmax: int = typer.Option(1, "--vmax", min=0, help="Velocity grid radius."),
    horizon: int = typer.Option(6, "--horizon", min=1, help="Imagined steps per candidate."),
    candidates: int = typer.Option(32, "--candidates", min=1, help="Candidate action sequences (K)."),
    iterations: int = typer.Option(2, "--iterations", min=1, help="CEM iterations."),
    rounds: int = ROUNDS_OPTION,
    json_out: Optional[Path] = JSON_OPTION,
) -> None:
    """Planning: decisions/s of the batched CEM planner against one that imagines one candidate at a time."""
    check_json_path(json_out)
    import torch

    from fernn.agents.bench.planning import bench_plan

    if window_size > world_size:
        fail(f"--window-size must be <= --world-size; got {window_size} > {world_size}")
    with console.status("benchmarking") as status:
        rows = bench_plan(world_size=world_size, window_size=window_size, hidden=hidden, vmax=vmax, horizon=horizon,
                          candidates=candidates, iterations=iterations, rounds=rounds,
                          progress=lambda msg: status.update(f"benchmarking {msg}"))
    device = f"CPU, {torch.get_num_threads()} threads"
    table = Table(title=f"CEM planning: K={candidates}, H={horizon}, {iterations} iterations, world {world_size}, "
                        f"hidden {hidden}, V={grid_velocities(vmax)} ({device})")
    for column in ("planner", "decisions/s (median)", "vs one at a time"):
        table.add_column(column, justify="left" if column == "planner" else "right")
    for row in rows:
        table.add_row(row["planner"], f"{row['decisions_per_s']:.3f}", _ratio(row["speed_vs_naive"], 1.0))
    console.print(table)
    write_json_flag(json_out, {"benchmark": "plan", "device": device, "candidates": candidates, "horizon": horizon,
                           "iterations": iterations, "world_size": world_size, "hidden": hidden, "vmax": vmax,
                           "torch": torch.__version__, "rows": rows})


@bench_app.command("block-world")
@guarded
def bench_block_world_command(
    num_envs: int = typer.Option(16, "--num-envs", min=1, help="Scenes of the native vector env."),
    obs_size: int = typer.Option(64, "--obs-size", min=8, max=1024, help="Image side in pixels (FloWM: 128)."),
    steps: int = typer.Option(400, "--steps", min=10, help="Single-env steps per round (the vector env takes a quarter "
                                                           "as many batched steps)."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Interleaved rounds; medians are reported."),
    peer: bool = typer.Option(True, "--peer/--no-peer", metavar="", help="Also time MiniWorld (needs the miniworld package)."),
    workers: bool = typer.Option(True, "--workers/--no-workers", metavar="",
                                 help="Also time --num-envs MiniWorld envs in worker processes (AsyncVectorEnv) "
                                      "against the vector env on every core: equal envs and cores."),
    device: str = DEVICE_OPTION,
    json_out: Optional[Path] = JSON_OPTION,
) -> None:
    """The first-person block world: env steps/s against MiniWorld's PutNext at the same image size, headless
    (PYGLET_HEADLESS=1), measured in the same run: equal envs and cores first (the vector env on every core against
    MiniWorld envs in worker processes), then one core each, then one env each."""
    check_json_path(json_out)
    import torch

    from fernn.agents.bench.block_world import bench_block_world

    name = _device_name(device)
    with console.status("benchmarking") as status:
        result = bench_block_world(num_envs=num_envs, obs_size=obs_size, device=device, steps=steps, rounds=rounds,
                                   peer=peer, workers=workers,
                                   progress=lambda message: status.update(f"benchmarking {message}"))
    table = Table(title=f"Block world, {obs_size}x{obs_size} px ({name}, torch {torch.__version__})")
    for column in ("comparison", "block world (env steps/s)", "MiniWorld (env steps/s)", "ratio"):
        table.add_column(column, justify="left" if column == "comparison" else "right")
    cores = result["cores"]
    rows = ((f"{num_envs} envs on {cores} cores each", result["vector_all_cores_steps_per_s"],
             result["miniworld_workers_steps_per_s"]),
            (f"one core each ({num_envs} batched scenes / one env)", result["vector_steps_per_s"],
             result["miniworld_steps_per_s"]),
            ("one env each", result["single_steps_per_s"], result["miniworld_steps_per_s"]))
    for label, ours, theirs in rows:
        table.add_row(label, f"{ours:,.0f}", "-" if theirs is None else f"{theirs:,.0f}",
                      "-" if theirs is None else _ratio(ours, theirs))
    console.print(table)
    console.print(f"[dim]MiniWorld: {result['peer']}; its {num_envs} envs in worker processes (AsyncVectorEnv).[/]")
    console.print("[dim]Target: the native vector env >= 10x MiniWorld's steps/s.[/]")
    write_json_flag(json_out, {"benchmark": "block-world", "device_name": name, "torch": torch.__version__, **result})
