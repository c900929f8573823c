"""The scripted expert's plans (no ROS): pick one of the two goals at random and reach it.

The path, in joint space: from where the arm is, to above the chosen target, then
down onto it, then hold. Each segment is timed so that no joint exceeds ``speed``
(rad/s); positions are linear in time within a segment. The expert drives the arm
through the recorder's leader-arm input, so the dataset holds what the recorder
commanded, exactly as with a human operator.

``plan_cartesian`` is the same task for the Cartesian teleop (``dp_ros sim record
--device cartesian``): tip waypoints above and onto the target, which the expert
follows by pushing a simulated 3D mouse (``twist_toward``, ``deflection_for``).
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


@dataclass(frozen=True)
class CartesianPlan:
    """The Cartesian expert's plan: tip waypoints (above the chosen target, then onto it),
    followed at ``speed`` (m/s) like an operator with a 3D mouse, then a still ``dwell``."""
    goal: int
    waypoints: np.ndarray  # (K, 3) tip positions in the arm's base frame
    speed: float
    dwell: float = 0.5


def plan_cartesian(targets: np.ndarray, rng: np.random.Generator, hover: float = 0.08, touch: float = 0.02,
                   speed: tuple[float, float] = (0.08, 0.12)) -> CartesianPlan:
    """Pick one of ``targets`` (2, xy) uniformly at random; a random speed in ``speed``."""
    goal = int(rng.integers(2))
    xy = np.asarray(targets[goal], float)
    points = np.array([[*xy, hover], [*xy, touch]])
    return CartesianPlan(goal, points, float(rng.uniform(*speed)))


def twist_toward(tip: np.ndarray, waypoint: np.ndarray, speed: float, gain: float = 3.0,
                 reached: float = 0.01) -> tuple[np.ndarray, bool]:
    """The tip velocity (3,) an operator would command toward ``waypoint``: proportional to
    the distance, at most ``speed``; and whether the waypoint is reached."""
    d = np.asarray(waypoint, float) - np.asarray(tip, float)
    dist = float(np.linalg.norm(d))
    v = d * min(gain, speed / dist) if dist > 1e-9 else np.zeros(3)
    return v, dist < reached


def deflection_for(velocity: np.ndarray, scale: float, deadzone: float) -> np.ndarray:
    """The device deflection (3,) that gives ``velocity`` through a deadzone and a scale (m/s
    at full deflection): a steady operator pushes just past the deadzone for slow motion."""
    u = np.clip(np.asarray(velocity, float) / scale, -1.0, 1.0)
    out = np.sign(u) * (deadzone + (1.0 - deadzone) * np.abs(u))
    return np.where(np.abs(u) > 1e-4, out, 0.0)
