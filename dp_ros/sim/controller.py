"""A joint_trajectory_controller for the simulated arm (numpy only).

It behaves like ros2_controllers' controller on its ``~/joint_trajectory`` topic, as
DESIGN.md describes it:

- a message is accepted or rejected by ``core.trajectory_rules`` (every joint named,
  no unknown or repeated names, points non-empty, strictly increasing
  time_from_start, a non-zero stamp whose last point is already past rejected, no
  non-zero velocity on the last point);
- an accepted message replaces the running trajectory (the Humble/Jazzy behaviour);
- header.stamp zero means "start now"; the trajectory starts from the commanded
  position at the moment it arrives and moves linearly to each point at
  ``stamp + time_from_start`` (positions only: linear segments); a message whose
  first point is already past is sampled between its own points;
- after the last point the controller holds it.

``command(now)`` gives the position setpoint for the arm's joint servos.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dp_ros.core.trajectory_rules import trajectory_violations


@dataclass(frozen=True)
class _Segment:
    times: np.ndarray  # (n+1,) absolute: the start, then each point
    positions: np.ndarray  # (n+1, J): the state at the start, then each point


class TrajectoryController:
    def __init__(self, joint_names: Sequence[str], initial: np.ndarray):
        self.joint_names = tuple(joint_names)
        self._hold = np.asarray(initial, dtype=float).copy()
        self._traj: _Segment | None = None
        self.accepted = 0
        self.rejected = 0
        self.last_error = ""

    def submit(self, joint_names: Sequence[str], stamp: float, times_from_start: Sequence[float],
               positions: Sequence[Sequence[float]], velocities: Sequence[Sequence[float]], now: float) -> list[str]:
        """Accept (returns []) or reject (returns the reasons) a trajectory message."""
        errors = trajectory_violations(joint_names, stamp, times_from_start, positions, velocities,
                                       self.joint_names, now)
        if errors:
            self.rejected += 1
            self.last_error = "; ".join(errors)
            return errors
        order = [list(joint_names).index(j) for j in self.joint_names]
        pts = np.asarray(positions, dtype=float)[:, order]  # message order -> controller order
        start = now if stamp == 0.0 else stamp
        current = self.command(now)
        point_times = start + np.asarray(times_from_start, dtype=float)
        if point_times[0] > now:  # move from the current setpoint to the first point
            self._traj = _Segment(np.concatenate([[now], point_times]), np.vstack([current, pts]))
        else:  # already past the first point: sample between the message's own points
            self._traj = _Segment(point_times, pts)
        self.accepted += 1
        return []

    def command(self, now: float) -> np.ndarray:
        """The position setpoint at ``now``."""
        if self._traj is None:
            return self._hold.copy()
        t, q = self._traj.times, self._traj.positions
        if now >= t[-1]:
            self._hold = q[-1].copy()
            self._traj = None
            return self._hold.copy()
        if now <= t[0]:
            return q[0].copy()
        i = int(np.searchsorted(t, now, side="right")) - 1
        w = (now - t[i]) / (t[i + 1] - t[i])
        return (1.0 - w) * q[i] + w * q[i + 1]

    @property
    def active(self) -> bool:
        return self._traj is not None
