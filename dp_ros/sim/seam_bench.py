"""``dp_ros sim seams``: every seam mode at every simulated inference delay, in lockstep.

    dp_ros sim seams --episodes 50 --seed 1 --out docs/seams

runs ``dp_ros sim sweep``'s grid of modes x delays (``--set seam_mode=M --latency L``,
same model, seed and episodes) and writes to DIR what the sweep writes (``cells/``, one
evaluation per cell, resumable; ``results.csv``, ``results.md`` and the plots), and:

- ``seams.md``: one table row per cell (success, goals, the motion metrics of
  ``sim.metrics``, chunks dropped as late);
- ``seams.png``: one joint's commanded path across three seams of the first episode
  at ``--plot-latency``, one panel per mode, each chunk's published points drawn
  over the path the controller ran.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dp_ros.core.seams import SEAM_MODES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="sim_reach", help="checkpoint (default: the bundled sim_reach)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--modes", default=",".join(SEAM_MODES), help="comma-separated seam modes")
    p.add_argument("--latencies", default="0,0.1,0.2,0.3", help="comma-separated simulated delays in seconds")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a policy node parameter for every cell (repeatable)")
    p.add_argument("--plot-latency", type=float, default=None, help="delay of the plotted runs (default: the largest)")
    p.add_argument("--joint", type=int, default=0, help="index of the plotted joint (default 0)")
    p.add_argument("--out", required=True, help="directory for the results")


def _cells(args) -> list[tuple[str, float]]:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in SEAM_MODES]
    if bad or not modes:
        raise SystemExit(f"dp_ros sim seams: --modes {args.modes!r}: each must be one of {', '.join(SEAM_MODES)}")
    try:
        latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"dp_ros sim seams: --latencies {args.latencies!r}: numbers in seconds, comma-separated")
    if not latencies or any(not x >= 0 for x in latencies):
        raise SystemExit(f"dp_ros sim seams: --latencies {args.latencies!r} must be >= 0")
    return [(m, x) for m in modes for x in latencies]


def run(args: argparse.Namespace) -> int:
    from dp_ros.sim.sweep import LATENCY, MODEL, parse_grid, run_grid, trace_path

    if args.episodes < 1:
        raise SystemExit("dp_ros sim seams: --episodes must be >= 1")
    cells = _cells(args)
    modes = list(dict.fromkeys(m for m, _ in cells))
    grid = parse_grid(args.set, args.latencies, args.model)
    if any(len(v) > 1 for k, v in grid.items() if k not in (MODEL, LATENCY)) or "seam_mode" in grid:
        raise SystemExit("dp_ros sim seams: --set takes one value per parameter, and not seam_mode (use --modes); "
                         "dp_ros sim sweep runs any grid")
    grid = {"seam_mode": modes, MODEL: grid[MODEL], LATENCY: list(dict.fromkeys(x for _, x in cells)),
            **{k: v for k, v in grid.items() if k not in (MODEL, LATENCY)}}  # mode outermost
    command = (f"dp_ros sim seams --model {args.model} --episodes {args.episodes} --seed {args.seed} "
               f"--modes {args.modes} --latencies {args.latencies}" + "".join(f" --set {s}" for s in args.set))
    out = Path(args.out)
    code, done = run_grid(grid, args.episodes, args.seed, out, command)
    results = {(dict(c.sets)["seam_mode"], c.latency): r for c, r in done.items()}
    if code != 0 or len(results) < len(cells):
        return code or 2
    table = out / "seams.md"
    table.write_text(markdown_table(results, args))
    print(f"table: {table}")
    plot_latency = max(x for _, x in cells) if args.plot_latency is None else args.plot_latency
    traces = {dict(c.sets)["seam_mode"]: trace_path(out / "cells" / f"{c.name(args.episodes, args.seed)}.json")
              for c in done if c.latency == plot_latency}
    if traces:
        png = out / "seams.png"
        plot_seams(traces, args.joint, png, plot_latency)
        print(f"plot: {png}")
    return 0


def _ratio(r: dict) -> float:
    motion = r["chunk_motion_median"]
    return r["seam_jump_median"] / motion if motion > 0 else float("inf")


def markdown_table(results: dict, args) -> str:
    lines = [
        f"`dp_ros sim seams --model {args.model} --episodes {args.episodes} --seed {args.seed} --modes {args.modes} "
        f"--latencies {args.latencies}" + "".join(f" --set {s}" for s in args.set) + "` (lockstep).",
        "",
        "| mode | delay ms | success | left / right | hold | seam jump median / max (rad) | jump / motion "
        "| seam step median | speed-limited | fastest segment | late chunks | rejected |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (mode, latency), r in results.items():
        g = r["goal_counts"]
        lines.append(
            f"| {mode} | {round(latency * 1000)} | {r['successes']}/{len(r['episodes'])} | {g['left']} / {g['right']} "
            f"| {100 * r['hold_fraction']:.1f}% | {r['seam_jump_median']:.3f} / {r['seam_jump_max']:.3f} "
            f"| {_ratio(r):.2f} | {r['seam_step_median']:.3f} | {100 * r['speed_limited_fraction']:.1f}% "
            f"| {100 * r['speed_ratio_max']:.0f}% | {r['chunks_late']} | {r['rejected_trajectories']} |")
    lines += ["", "jump / motion: the seam jump median over the median motion per control period between points "
              "inside chunks. Fastest segment: of the joint speed limit."]
    return "\n".join(lines) + "\n"


def _setpoint(commands: list, t: float, joint: int) -> float:
    """What the controller commanded at ``t``: the last trajectory accepted by then."""
    current = None
    for accepted, c in commands:
        if accepted <= t + 1e-9:
            current = c
    return float("nan") if current is None else float(current.at(t)[joint])


def plot_seams(traces: dict, joint: int, png: Path, latency: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dp_ros.sim.results import read_trace

    fig, axes = plt.subplots(len(traces), 1, figsize=(8, 2.4 * len(traces)), squeeze=False)
    for ax, (mode, path) in zip(axes[:, 0], traces.items()):
        head, commands = read_trace(path)
        if len(commands) < 5:
            ax.set_title(f"{mode}: fewer than five trajectories in the first episode")
            continue
        t0, t1 = commands[1][0], commands[4][0] + 3 * head["dt"]
        grid = np.linspace(t0, t1, 400)
        ax.plot(grid - t0, [_setpoint(commands, t, joint) for t in grid], color="k", lw=2, label="commanded")
        for k, (accepted, c) in enumerate(commands[1:5], start=1):
            keep = c.times <= t1 + 2 * head["dt"]
            ax.plot(c.times[keep] - t0, c.positions[keep, joint], "o-", ms=3, lw=0.8, alpha=0.8,
                    label=f"chunk {k}" if k < 5 else None)
            if k > 1:
                ax.axvline(accepted - t0, color="grey", ls="--", lw=0.8)
        ax.set_title(f"{mode}, {round(latency * 1000)} ms inference delay (dashed: switches)", fontsize=10)
        ax.set_ylabel(f"{head['joint_names'][joint]} (rad)")
    axes[-1, 0].set_xlabel("seconds")
    axes[0, 0].legend(fontsize=7, ncol=5, loc="best")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
