"""``dp_ros sim sweep``: the lockstep evaluation over every combination of settings.

    dp_ros sim sweep --set action_horizon=1,2,4,8,15 --latency 0,0.3 --episodes 50 --seed 1 --out DIR

Each swept variable is a policy node parameter (``--set NAME=V1,V2,...``: values read
as YAML, as ``ros2 param set`` does), the simulated inference delay (``--latency``,
seconds) or the checkpoint (``--models``). A ``--set`` with one value applies to every
cell. Every cell is ``dp_ros sim eval`` with the same ``--episodes`` and ``--seed``, so
cells differ in their settings only: the scene's targets and the denoiser's noise are
the same episode for episode.

DIR receives:

- ``cells/<name>.json``: each cell's evaluation (``sim eval --json``, with the cell's
  settings under ``sweep_cell``), ``cells/<name>.log`` its output and
  ``cells/<name>.trace.json`` the trajectories accepted in its first episode. A cell counts once
  its JSON is there, and a rerun of the same command skips it (resumable: stop it at
  any time). The name holds a hash of the settings, episodes and seed.
- ``results.csv``: one row per cell of this grid: the settings, success with its 95%
  Wilson interval, goal counts, time to success and the motion metrics (``sim.metrics``).
- ``results.md``: the same as a table, under the command that made it.
- ``<variable>.png`` for each variable with more than one value: success rate (95%
  Wilson interval) against the value, one line per combination of the other swept
  variables; below it the share of the less chosen goal, the time to success and the
  median seam jump.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dp_ros.sim.results import GOALS, wilson_interval

LATENCY, MODEL = "latency", "model"


@dataclass(frozen=True)
class Cell:
    """One combination: the checkpoint, the simulated delay and the node parameters."""

    model: str
    latency: float
    sets: tuple[tuple[str, Any], ...]  # (parameter, value), in --set order

    def settings(self) -> dict[str, Any]:
        return {MODEL: self.model, LATENCY: self.latency, **dict(self.sets)}

    def name(self, episodes: int, seed: int, timeout: float = 12.0) -> str:
        """A file name: readable settings and a hash of everything that makes the result."""
        extra = {"timeout": timeout} if timeout != 12.0 else {}  # names from before --timeout stay valid
        key = json.dumps({**self.settings(), "episodes": episodes, "seed": seed, **extra}, sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:10]
        parts = [Path(self.model).name, f"{round(self.latency * 1000)}ms"] + [f"{k}-{v}" for k, v in self.sets]
        readable = "_".join(parts)
        readable = "".join(c if c.isalnum() or c in "._-" else "-" for c in readable)[:80]
        return f"{readable}_{digest}"


def split_values(text: str) -> list[str]:
    """``a,b,[1,2]`` -> ['a', 'b', '[1,2]']: commas inside brackets or braces stay."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += c in "[{"
        depth -= c in "]}"
        if c == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return [v.strip() for v in out]


def parse_grid(sets: list[str], latencies: str, models: str) -> dict[str, list]:
    """The swept variables and their values, in order: model, latency, then each --set.
    SystemExit with the reason for an empty, repeated or unreadable value."""
    import yaml

    def fail(msg: str):
        raise SystemExit(f"dp_ros sim sweep: {msg}")

    grid: dict[str, list] = {}
    names = split_values(models)
    if not all(names):
        fail(f"--models {models!r}: comma-separated checkpoint directories or bundled names, none empty")
    grid[MODEL] = names
    try:
        grid[LATENCY] = [float(x) for x in split_values(latencies)]
    except ValueError:
        fail(f"--latency {latencies!r}: seconds, comma-separated")
    if any(not (x >= 0 and math.isfinite(x)) for x in grid[LATENCY]):
        fail(f"--latency {latencies!r}: every delay must be >= 0 seconds")
    for item in sets:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            fail(f"--set {item!r}: expected NAME=VALUE[,VALUE...]")
        if name in grid:
            fail(f"--set {name}: given twice" if name not in (MODEL, LATENCY) else
                 f"--set {name}: use --models or --latency for that")
        raw = split_values(text)
        if not all(raw):
            fail(f"--set {item!r}: an empty value")
        try:
            grid[name] = [yaml.safe_load(v) for v in raw]
        except yaml.YAMLError as exc:
            fail(f"--set {item!r}: {exc}")
    for name, values in grid.items():
        if len({json.dumps(v) for v in values}) != len(values):
            fail(f"{name}: a value is listed twice ({values})")
    return grid


def grid_cells(grid: dict[str, list]) -> list[Cell]:
    """Every combination, the last variable changing fastest."""
    names = list(grid)
    cells = []
    for combo in itertools.product(*(grid[n] for n in names)):
        values = dict(zip(names, combo))
        cells.append(Cell(values.pop(MODEL), float(values.pop(LATENCY)), tuple(values.items())))
    return cells


def run_cell(cell: Cell, episodes: int, seed: int, json_path: Path, log_path: Path,
             trace: Path | None = None, timeout: float = 12.0, on_episode=None) -> dict:
    """``dp_ros sim eval`` for one cell, in this process; its output goes to ``log_path``.
    The JSON appears at ``json_path`` only once the cell has finished. RuntimeError if
    the evaluation fails (it names the log)."""
    from dp_ros.sim import evaluate

    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    tmp = json_path.with_suffix(".tmp")
    argv = ["--model", cell.model, "--episodes", str(episodes), "--seed", str(seed), "--latency", repr(cell.latency),
            "--timeout", repr(timeout), "--json", str(tmp), "--log", str(log_path.with_suffix(".ros.log"))]
    for name, value in cell.sets:
        argv += ["--set", f"{name}={json.dumps(value)}"]  # JSON is YAML: read back as the same value
    if trace is not None:
        argv += ["--trace", str(trace)]
    json_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log):
        code = evaluate.run(parser.parse_args(argv), on_episode=on_episode)
    if code != 0:
        last = log_path.read_text().strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"exit {code}: {last[0]} (log: {log_path})")
    record = json.loads(tmp.read_text())
    record["sweep_cell"] = {**cell.settings(), "episodes": episodes, "seed": seed}
    tmp.write_text(json.dumps(record))
    tmp.replace(json_path)  # only a finished cell counts
    return record


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a policy node parameter and its values (repeatable); one value: every cell")
    p.add_argument("--latency", default="0", help="simulated inference delays in seconds, comma-separated")
    p.add_argument("--models", default="sim_reach", help="checkpoints, comma-separated (default: the bundled sim_reach)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=12.0, help="seconds per episode before it counts as a failure")
    p.add_argument("--out", required=True, help="directory for the results (a rerun resumes)")


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise SystemExit("dp_ros sim sweep: --episodes must be >= 1")
    if not args.timeout > 0:
        raise SystemExit("dp_ros sim sweep: --timeout must be > 0 seconds")
    grid = parse_grid(args.set, args.latency, args.models)
    command = " ".join(["dp_ros sim sweep"] + [f"--set {s}" for s in args.set] +
                       [f"--latency {args.latency}", f"--models {args.models}", f"--episodes {args.episodes}",
                        f"--seed {args.seed}"] + ([f"--timeout {args.timeout:g}"] if args.timeout != 12.0 else []))
    code, _ = run_grid(grid, args.episodes, args.seed, Path(args.out), command, args.timeout)
    return code


def run_grid(grid: dict[str, list], episodes: int, seed: int, out: Path, command: str,
             timeout: float = 12.0) -> tuple[int, dict]:
    """Run the grid's unfinished cells, then write results.csv, results.md and the plots
    from every finished one. Returns (exit code, {Cell: evaluation record})."""
    from dp_ros.paths import share_dir
    from dp_ros.runtime.backends import resolve_model_path

    for model in grid[MODEL]:
        try:
            resolve_model_path(model, share_dir())
        except (FileNotFoundError, ValueError) as exc:
            raise SystemExit(f"dp_ros sim sweep: --models: {exc}") from None
    cells = grid_cells(grid)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    paths = {c: out / "cells" / f"{c.name(episodes, seed, timeout)}.json" for c in cells}
    todo = [c for c in cells if not paths[c].is_file()]
    print(f"dp_ros sim sweep: {len(cells)} cells x {episodes} episodes, {len(cells) - len(todo)} already "
          f"done; results in {out}", flush=True)
    code = _run_cells(todo, paths, episodes, seed, timeout) if todo else 0
    done = {c: json.loads(paths[c].read_text()) for c in cells if paths[c].is_file()}
    if not done:
        return code or 1, done
    rows = [row(c, r) for c, r in done.items()]
    write_csv(rows, out / "results.csv")
    (out / "results.md").write_text(markdown_table(rows, grid, command, len(cells)))
    print(f"table: {out / 'results.md'} ({len(done)} of {len(cells)} cells)")
    for name, values in grid.items():
        if len(values) > 1:
            png = out / f"{name}.png"
            plot_variable(rows, grid, name, png)
            print(f"plot: {png}")
    return code, done


def trace_path(json_path: Path) -> Path:
    """Where a cell's trace is: the trajectories the controller accepted in its first episode."""
    return json_path.with_suffix(".trace.json")


def _run_cells(todo: list[Cell], paths: dict, episodes: int, seed: int, timeout: float) -> int:
    from tqdm import tqdm

    terminal = sys.stdout  # the cells' own output goes to their logs
    bar = tqdm(total=len(todo) * episodes, unit="episode", file=terminal, dynamic_ncols=True, mininterval=1.0)
    try:
        for k, cell in enumerate(todo):
            label = ", ".join(f"{n}={v}" for n, v in cell.settings().items())
            bar.set_description(f"cell {k + 1}/{len(todo)}")
            t0 = time.perf_counter()
            json_path = paths[cell]
            try:
                r = run_cell(cell, episodes, seed, json_path, json_path.with_suffix(".log"),
                             trace=trace_path(json_path), timeout=timeout, on_episode=lambda _: bar.update(1))
            except RuntimeError as exc:
                bar.write(f"dp_ros sim sweep: {label}: {exc}; the finished cells are kept, a rerun resumes")
                return 2
            g = r["goal_counts"]
            bar.write(f"{label}: {r['successes']}/{len(r['episodes'])}, left {g['left']} right {g['right']}, "
                      f"hold {100 * r['hold_fraction']:.1f}%, seam jump {r['seam_jump_median']:.3f} rad "
                      f"({time.perf_counter() - t0:.0f} s)")
    finally:
        bar.close()
    return 0


METRICS = (  # (column, what it is), after the settings
    ("episodes", "episodes"), ("successes", "successes"), ("success_rate", "success rate"),
    ("success_low", "95% Wilson interval, low"), ("success_high", "95% Wilson interval, high"),
    *((g, f"episodes that touched the {g} target") for g in GOALS),
    ("seconds_to_success", "mean seconds to success"), ("hold_fraction", "control periods holding still"),
    ("seam_jump_median", "rad"), ("seam_jump_max", "rad"), ("seam_step_median", "rad"),
    ("chunk_motion_median", "rad per period inside chunks"), ("speed_limited_fraction", "of published points"),
    ("speed_ratio_max", "fastest segment / speed limit"), ("rejected_trajectories", "by the controller"),
    ("chunks", "chunks published"), ("chunks_late", "chunks dropped as late"),
    ("inference_ms_p50", "wall time on this machine"),
)


def row(cell: Cell, r: dict) -> dict:
    """One cell's settings and figures, flat."""
    n = len(r["episodes"])  # the evaluation's JSON lists them
    low, high = wilson_interval(r["successes"], n)
    t = r.get("seconds_to_success") or {}
    out = dict(cell.settings())
    out.update(episodes=n, successes=r["successes"], success_rate=r["success_rate"],
               success_low=low, success_high=high, seconds_to_success=t.get("mean", float("nan")))
    out.update({g: r["goal_counts"][g] for g in GOALS})
    for key, _ in METRICS:
        if key not in out:
            out[key] = r.get(key)
    return out


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def markdown_table(rows: list[dict], grid: dict, command: str, n_cells: int) -> str:
    shown = [n for n in grid if len(grid[n]) > 1] or [LATENCY]
    fixed = [f"{n}={_fmt(v[0])}" for n, v in grid.items() if len(v) == 1]
    lines = [f"`{command}` (lockstep; fixed: {', '.join(fixed) or 'nothing'})."]
    if len(rows) < n_cells:
        lines.append(f"\n{len(rows)} of {n_cells} cells finished.")
    head = [*shown, "success", "95% interval", "left / right", "time to success", "hold", "seam jump median / max",
            "speed-limited", "late", "rejected"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + " --- |" * len(shown) + " ---: |" * (len(head) - len(shown))]
    for r in rows:
        settings = [str(round(r[n] * 1000)) + " ms" if n == LATENCY else Path(str(r[n])).name if n == MODEL
                    else _fmt(r[n]) for n in shown]
        t = r["seconds_to_success"]
        lines.append("| " + " | ".join(settings + [
            f"{r['successes']}/{r['episodes']}", f"{100 * r['success_low']:.0f}-{100 * r['success_high']:.0f}%",
            " / ".join(str(r[g]) for g in GOALS), "-" if math.isnan(t) else f"{t:.1f} s",
            f"{100 * r['hold_fraction']:.1f}%", f"{r['seam_jump_median']:.3f} / {r['seam_jump_max']:.3f}",
            f"{100 * r['speed_limited_fraction']:.1f}%", str(r["chunks_late"]), str(r["rejected_trajectories"])]) + " |")
    lines += ["", "Seam jump: the commanded position's jump where one trajectory replaces the next (rad); "
              "speed-limited: published points the safety filter changed; hold: control periods after the first "
              "chunk with no point ahead (docs/sim.md)."]
    return "\n".join(lines) + "\n"


def plot_variable(rows: list[dict], grid: dict, name: str, png: Path) -> None:
    """Success (95% Wilson interval), the less chosen goal's share, the time to success
    and the median seam jump against ``name``'s values, one line per combination of the
    other swept variables."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = grid[name]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    xs = {json.dumps(v): (v * 1000 if name == LATENCY else v) if numeric else i for i, v in enumerate(values)}
    others = [n for n in grid if n != name and len(grid[n]) > 1]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(json.dumps(r[n]) for n in others), []).append(r)
    positions = sorted(xs.values())
    span = (positions[-1] - positions[0]) or 1.0
    fig, axes = plt.subplots(4, 1, figsize=(6.4, 8.6), sharex=True, gridspec_kw={"height_ratios": [2, 1, 1, 1]})
    for g, (key, members) in enumerate(groups.items()):
        members = sorted(members, key=lambda r: xs[json.dumps(r[name])])
        dodge = (g - (len(groups) - 1) / 2) * 0.012 * span  # overlapping lines stay readable
        x = [xs[json.dumps(r[name])] + dodge for r in members]
        label = ", ".join(f"{n}={_label(n, json.loads(k))}" for n, k in zip(others, key)) or None
        rate = [r["success_rate"] for r in members]
        err = [[max(0.0, p - r["success_low"]) for p, r in zip(rate, members)],  # no -1e-16 at 0 or n
               [max(0.0, r["success_high"] - p) for p, r in zip(rate, members)]]
        style = {"marker": "o", "linestyle": "-" if numeric else "none"}  # no line between categories
        line = axes[0].errorbar(x, rate, yerr=err, capsize=3, label=label, **style)
        share = [min(r[g] for g in GOALS) / r["successes"] if r["successes"] else 0.0 for r in members]
        axes[1].plot(x, share, color=line[0].get_color(), **style)
        axes[2].plot(x, [r["seconds_to_success"] for r in members], color=line[0].get_color(), **style)
        axes[3].plot(x, [r["seam_jump_median"] for r in members], color=line[0].get_color(), **style)
    axes[0].set_ylim(-0.02, 1.05)
    axes[0].set_ylabel("success (95% CI)")
    axes[1].set_ylim(-0.02, 0.55)
    axes[1].set_ylabel("less chosen goal")
    axes[2].set_ylabel("time to success (s)")
    axes[3].set_ylabel("seam jump median (rad)")
    axes[3].set_ylim(bottom=0)
    axes[3].set_xlabel(f"{name} (ms)" if name == LATENCY else name)
    axes[3].set_xticks(positions, [_label(name, v) for v in values] if not numeric else
                       [f"{p:g}" for p in positions])
    if others:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _label(name: str, value: Any) -> str:
    if name == LATENCY:
        return f"{round(value * 1000)} ms"
    return Path(str(value)).name if name == MODEL else str(value)
