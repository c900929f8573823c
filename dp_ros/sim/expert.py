"""The scripted expert's plan (no ROS): pick one of the two goals at random and reach it.

The path, in joint space: from where the arm is, to above the chosen target, then
down onto it, then hold. Each segment is timed so that no joint exceeds ``speed``
(rad/s); positions are linear in time within a segment. The expert drives the arm
through the recorder's leader-arm input, so the dataset holds what the recorder
commanded, exactly as with a human operator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ExpertPlan:
    goal: int  # 0 = left target, 1 = right target
    times: np.ndarray  # (K,) seconds from the start of the plan, increasing, times[0] = 0
    waypoints: np.ndarray  # (K, J)

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def at(self, t: float) -> np.ndarray:
        """Joint positions at ``t`` seconds into the plan (held after the end)."""
        if t >= self.times[-1]:
            return self.waypoints[-1].copy()
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        w = (t - self.times[i]) / (self.times[i + 1] - self.times[i])
        return (1 - w) * self.waypoints[i] + w * self.waypoints[i + 1]


def plan_reach(start: np.ndarray, targets: np.ndarray, ik, rng: np.random.Generator, speed: float = 0.6,
               hover: float = 0.08, touch: float = 0.02, dwell: float = 0.5) -> ExpertPlan:
    """A plan from ``start`` to one of ``targets`` (2, xy), chosen uniformly at random.

    ``ik(xy, height) -> joint positions`` (``SimArm.solve_ik``). Small random timing
    variations make demonstrations differ the way a human's would.
    """
    goal = int(rng.integers(2))
    above = ik(targets[goal], hover)
    down = ik(targets[goal], touch)
    points = [np.asarray(start, dtype=float), above, down, down]
    times = [0.0]
    for k in range(1, len(points)):
        if k == len(points) - 1:
            dt = dwell
        else:
            dt = float(np.max(np.abs(points[k] - points[k - 1]))) / speed
            dt = max(dt, 0.2) * rng.uniform(1.0, 1.25)
        times.append(times[-1] + dt)
    return ExpertPlan(goal, np.array(times), np.stack(points))
