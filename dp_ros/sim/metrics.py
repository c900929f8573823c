"""Motion metrics of a rollout, from the trajectories the simulated controller accepted (no ROS).

- hold fraction: of the control periods in an episode, those in which no point of the
  running trajectory lay ahead, so the controller was holding still;
- seam jumps: at each switch from one trajectory to the next, the largest per-joint
  difference between the new trajectory's first point and where the old trajectory
  would have been at that point's time. The controller itself never jumps (it moves
  from its current setpoint to the new first point), so this is how far a new chunk
  disagrees with the one it replaces, which the arm must make up within one segment.
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
