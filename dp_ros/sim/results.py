"""The results of ``dp_ros sim eval`` (no ROS): per-episode figures, their summary and
how it is printed, and the trace of accepted trajectories (``--trace``)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GOALS = ("left", "right")


@dataclass
class EpisodeResult:
    index: int
    success: bool
    goal: int  # 0 left, 1 right, -1 none
    seconds: float  # to success, or the timeout
    chunks: int  # chunks the policy published during the episode
    holding: int = 0  # control periods with no trajectory point ahead
    periods: int = 0
    seam_jumps: tuple = ()  # per switch between accepted trajectories, radians
    points: int = 0  # trajectory points published
    points_changed: int = 0  # of those, changed by the safety filter
    startup: float = 0.0  # seconds from enabling to the first accepted trajectory
    seam_steps: tuple = ()  # per switch: the setpoint's motion over the period from it, radians
    chunk_motion_median: float = 0.0  # median per-period motion between points inside trajectories
    speed_ratio: float = 0.0  # fastest executed segment, as a fraction of the joint's speed limit
    rejected: int = 0  # trajectories the controller rejected


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95% for the default z): unlike
    p +- z*sqrt(p(1-p)/n) it stays inside [0, 1] and is not empty at 0 or n successes."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * float(np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)))
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if successes == 0 else low), (1.0 if successes == n else high)  # exact at the ends


def summarize(results: list[EpisodeResult]) -> dict:
    """Success rate, goals chosen (as counts and as a fraction of all episodes), time to success."""
    n = len(results)
    ok = [r for r in results if r.success]
    goals = {name: sum(1 for r in ok if r.goal == g) for g, name in enumerate(GOALS)}
    times = [r.seconds for r in ok]
    return {
        "episodes": n,
        "successes": len(ok),
        "success_rate": len(ok) / n if n else 0.0,
        "goals": goals,
        "goal_fraction": {k: v / n if n else 0.0 for k, v in goals.items()},
        "seconds_to_success": {"mean": float(np.mean(times)), "max": float(np.max(times))} if times else None,
    }


def motion_summary(results: list[EpisodeResult]) -> dict:
    """The motion metrics over all episodes (sim.metrics)."""
    periods = sum(r.periods for r in results)
    jumps = [j for r in results for j in r.seam_jumps]
    steps = [j for r in results for j in r.seam_steps]
    points = sum(r.points for r in results)
    return {
        "hold_fraction": sum(r.holding for r in results) / periods if periods else 0.0,
        "seam_jump_median": float(np.median(jumps)) if jumps else 0.0,
        "seam_jump_max": float(np.max(jumps)) if jumps else 0.0,
        "seam_step_median": float(np.median(steps)) if steps else 0.0,
        "seam_step_max": float(np.max(steps)) if steps else 0.0,
        "chunk_motion_median": float(np.median([r.chunk_motion_median for r in results])) if results else 0.0,
        "speed_limited_fraction": sum(r.points_changed for r in results) / points if points else 0.0,
        "speed_ratio_max": max((r.speed_ratio for r in results), default=0.0),
        "rejected_trajectories": sum(r.rejected for r in results),
        "startup_s_mean": float(np.mean([r.startup for r in results])) if results else 0.0,
        "chunks": sum(r.chunks for r in results),
    }


def format_summary(s: dict, label: str) -> str:
    lines = [f"{label}: {s['successes']}/{s['episodes']} episodes succeeded ({100 * s['success_rate']:.0f}%)"]
    lines.append("goal chosen: " + ", ".join(
        f"{g} {n} ({100 * s['goal_fraction'][g]:.0f}% of episodes)" for g, n in s["goals"].items()))
    if s["seconds_to_success"]:
        t = s["seconds_to_success"]
        lines.append(f"time to success: mean {t['mean']:.1f} s, max {t['max']:.1f} s")
    return "\n".join(lines)


def format_motion(s: dict, latency: float) -> str:
    motion = s["chunk_motion_median"]
    ratio = f" ({s['seam_jump_median'] / motion:.1f}x the motion per period)" if motion > 0 else ""
    return (f"motion: holding {100 * s['hold_fraction']:.1f}% after the first chunk ({s['startup_s_mean']:.2f} s); "
            f"seam jump median {s['seam_jump_median']:.3f} rad{ratio}, max {s['seam_jump_max']:.3f}; "
            f"{100 * s['speed_limited_fraction']:.1f}% of points speed-limited (fastest segment "
            f"{100 * s['speed_ratio_max']:.0f}% of the limit); {s['rejected_trajectories']} rejected; "
            f"{s['chunks']} chunks ({s.get('chunks_late', 0)} late); {s['time']}, latency {latency:g} s")


def write_trace(path: Path, commands: list, cfg) -> None:
    """The accepted trajectories as JSON: when each was accepted (simulated seconds) and
    the path the controller ran (its start, and each point's time and joint positions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"joint_names": list(cfg.joint_names), "dt": cfg.dt, "trajectories": [
        {"accepted": t, "start_time": c.start_time, "start": c.start.tolist(), "times": c.times.tolist(),
         "positions": c.positions.tolist()} for t, c in commands]}))


def read_trace(path: Path) -> tuple[dict, list]:
    """(the trace's header, [(accepted, Command)]) from ``write_trace``'s file."""
    from dp_ros.core.command import Command

    data = json.loads(Path(path).read_text())
    commands = [(c["accepted"], Command(c["start_time"], np.array(c["start"]), np.array(c["times"]),
                                        np.array(c["positions"]))) for c in data.pop("trajectories")]
    return data, commands

