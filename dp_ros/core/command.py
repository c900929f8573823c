"""What the controller executes after accepting one of our commands (numpy only).

A joint_trajectory_controller that accepts a trajectory takes it over at its switch
time, from where it is then, moves linearly (positions only) to each point at its
time, and holds the last point afterwards. ``Command`` is that path, as the node
that sent it knows it, so the node can tell where the controller will be at any
time: the start of the next command (the safety filter limits its first segment
from there), the position a hold command keeps, and (for the recorder) the joint
target the arm should have reached at a record tick, which is the action stored
for that tick (docs/timing.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Command:
    start_time: float  # when the controller takes it over
    start: np.ndarray  # (J,) where it is then
    times: np.ndarray  # (n,) absolute time of each point, increasing, >= start_time
    positions: np.ndarray  # (n, J)

    def __post_init__(self) -> None:
        times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        pos = np.asarray(self.positions, dtype=np.float64)
        start = np.asarray(self.start, dtype=np.float64).reshape(-1)
        if pos.shape != (times.size, start.size) or times.size == 0:
            raise ValueError(f"a command needs (n, J) positions for n times and a (J,) start; got {pos.shape}, "
                             f"{times.size} times, start {start.shape}")
        if times[0] < self.start_time or np.any(np.diff(times) <= 0):
            raise ValueError("command times must start at or after the switch time and increase strictly")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "start", start)

    @property
    def end_time(self) -> float:
        return float(self.times[-1])

    def at(self, t: float) -> np.ndarray:
        """The controller's setpoint at ``t`` (the start before the switch, the last point after the end)."""
        knots_t = np.concatenate([[self.start_time], self.times])  # (n+1,)
        knots_q = np.vstack([self.start, self.positions])  # (n+1, J)
        if t <= knots_t[0]:
            return knots_q[0].copy()
        if t >= knots_t[-1]:
            return knots_q[-1].copy()
        i = int(np.searchsorted(knots_t, t, side="right")) - 1
        span = knots_t[i + 1] - knots_t[i]
        w = (t - knots_t[i]) / span if span > 0 else 1.0
        return (1.0 - w) * knots_q[i] + w * knots_q[i + 1]

    @classmethod
    def from_message(cls, arrival: float, current: np.ndarray, stamp: float, times_from_start, positions) -> "Command":
        """What the controller does with an accepted message that arrives at ``arrival``
        while its setpoint is ``current``: stamp 0 means "start now"; points are reached at
        stamp + time_from_start; if the first of them is already past, it samples between
        the message's own points (and holds the last one once all are past)."""
        pts = np.asarray(positions, dtype=np.float64)
        point_times = (arrival if stamp == 0.0 else stamp) + np.asarray(times_from_start, dtype=np.float64)
        if point_times[0] > arrival:
            return cls(arrival, current, point_times, pts)
        if len(point_times) == 1:
            return cls(point_times[0], pts[0], point_times, pts)
        return cls(point_times[0], pts[0], point_times[1:], pts[1:])


class CommandLog:
    """The last few commands sent, each in effect from its switch time until the next one's."""

    def __init__(self, keep: int = 8):
        self._commands: list[Command] = []
        self._keep = keep

    def add(self, command: Command) -> None:
        self._commands = [*self._commands[-(self._keep - 1):], command]

    def clear(self) -> None:
        self._commands = []

    @property
    def current(self) -> Command | None:
        return self._commands[-1] if self._commands else None

    def at(self, t: float) -> np.ndarray | None:
        """The setpoint at ``t`` by the command in effect then; None if none was yet."""
        for command in reversed(self._commands):
            if command.start_time <= t:
                return command.at(t)
        return None


def start_position(command: Command | None, t_switch: float, measured, now: float, max_age: float,
                   max_velocity: np.ndarray, tolerance: float = np.inf) -> tuple[np.ndarray | None, str]:
    """Where the controller will be at ``t_switch``, when a new command takes over, and a
    note ("" when all is as expected).

    On our last ``command`` while we know it; else the newest measurement ``(stamp,
    position, velocity)`` if it is at most ``max_age`` old at ``now``, moved on to
    ``t_switch`` at the measured velocity (capped at ``max_velocity``), so an old
    measurement of a moving arm is not taken for where it is. Our command is not trusted
    when the fresh measurement lies more than ``tolerance`` from it (someone else moved
    the arm or restarted the controller): then the measurement is used, and the note
    says so. None when neither is known.
    """
    fresh = measured if measured is not None and now - measured[0] <= max_age else None
    note = ""
    if command is not None:
        if fresh is None:
            return command.at(t_switch), note
        off = np.abs(command.at(fresh[0]) - np.asarray(fresh[1], dtype=np.float64))
        if not np.max(off) > tolerance:
            return command.at(t_switch), note
        j = int(np.argmax(off))
        note = (f"the arm is {off[j]:.3f} (joint {j}) from where our last command put the controller, more than the "
                f"tracking tolerance {tolerance:g}: starting from the measured position")
    if fresh is None:
        return None, note
    stamp, q, v = fresh
    v = np.clip(v, -max_velocity, max_velocity)
    return np.asarray(q, dtype=np.float64) + v * max(t_switch - stamp, 0.0), note
