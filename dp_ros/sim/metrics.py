"""Motion metrics of a rollout, from the trajectories the simulated controller accepted (no ROS).

- hold fraction: of the control periods in an episode from its first trajectory on
  (the wait for the first chunk after enabling is not counted: it is no seam), those
  in which no point of the running trajectory lay ahead, so the controller was holding
  still;
- seam jumps: at each switch from one trajectory to the next, the largest per-joint
  difference between the new trajectory's first point and where the old trajectory
  would have been at that point's time. The controller itself never jumps (it moves
  from its current setpoint to the new first point), so this is how far a new chunk
  disagrees with the one it replaces, which the arm must make up within one segment.
- seam steps: at each switch, how far the controller's setpoint moves in the control
  period that starts there (the largest joint), to compare with
- chunk motion: the same per-period motion between consecutive points inside
  trajectories (the largest joint, per period of dt);
- speed ratio: on every segment the controller executes (from its setpoint at the
  switch to the first point, then point to point), the largest joint speed as a
  fraction of that joint's limit: above 1 the speed limit was broken.
"""
from __future__ import annotations

import numpy as np

from dp_ros.core.command import Command


def hold_fraction(commands: list[tuple[float, Command]], t0: float, t1: float, dt: float) -> tuple[int, int]:
    """(periods holding, periods) for the control instants t0, t0 + dt, ... < t1;
    ``commands`` are (time accepted, command), in order."""
    holding = total = 0
    k = 0
    for t in np.arange(t0, t1 - 1e-9, dt):
        while k < len(commands) and commands[k][0] <= t + 1e-9:
            k += 1
        current = commands[k - 1][1] if k else None
        total += 1
        if current is None or current.times[-1] <= t + 1e-9:
            holding += 1
    return holding, total


def seam_jumps(commands: list[tuple[float, Command]]) -> list[float]:
    """One value per switch between consecutive accepted commands (radians)."""
    out = []
    for (_, old), (_, new) in zip(commands, commands[1:]):
        out.append(float(np.max(np.abs(new.positions[0] - old.at(new.times[0])))))
    return out


def seam_steps(commands: list[tuple[float, Command]], dt: float) -> list[float]:
    """One value per switch: the setpoint's largest joint motion over the period from the switch."""
    out = []
    for t, new in commands[1:]:
        out.append(float(np.max(np.abs(new.at(t + dt) - new.at(t)))))
    return out


def chunk_motion(commands: list[tuple[float, Command]], dt: float) -> list[float]:
    """Per-period motion (largest joint, scaled to one period of dt) between consecutive
    points inside each trajectory."""
    out: list[float] = []
    for _, c in commands:
        if len(c.times) > 1:
            step = np.max(np.abs(np.diff(c.positions, axis=0)), axis=1) / np.diff(c.times) * dt  # (n-1,)
            out.extend(float(x) for x in step)
    return out


def speed_ratio(commands: list[tuple[float, Command]], max_velocity: np.ndarray) -> float:
    """The largest joint speed on any executed segment, as a fraction of that joint's limit."""
    worst = 0.0
    vmax = np.asarray(max_velocity, dtype=np.float64)
    for _, c in commands:
        t = np.concatenate([[c.start_time], c.times])  # (n+1,)
        q = np.vstack([c.start, c.positions])  # (n+1, J)
        span = np.diff(t)[:, None]  # (n, 1)
        moving = span[:, 0] > 0
        if moving.any():
            worst = max(worst, float(np.max(np.abs(np.diff(q, axis=0))[moving] / span[moving] / vmax)))
    return worst
