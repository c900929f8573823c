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

The path itself is ``core.command.Command``: the same model the policy node and the
recorder use to know where the controller is.

``command(now)`` gives the position setpoint for the arm's joint servos.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dp_ros.core.command import Command
from dp_ros.core.trajectory_rules import trajectory_violations


class TrajectoryController:
    def __init__(self, joint_names: Sequence[str], initial: np.ndarray):
        self.joint_names = tuple(joint_names)
        self._hold = np.asarray(initial, dtype=float).copy()
        self._command: Command | None = None
        self._last: Command | None = None
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
        self._command = self._last = Command.from_message(now, self.command(now), stamp, times_from_start, pts)
        self.accepted += 1
        return []

    def command(self, now: float) -> np.ndarray:
        """The position setpoint at ``now``."""
        if self._command is None:
            return self._hold.copy()
        if now >= self._command.end_time:
            self._hold = self._command.positions[-1].copy()
            self._command = None
            return self._hold.copy()
        return self._command.at(now)

    @property
    def last_command(self) -> Command | None:
        """The trajectory accepted last, as the controller runs it (None before any)."""
        return self._last

    @property
    def active(self) -> bool:
        return self._command is not None
