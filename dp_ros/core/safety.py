"""The last check before any command reaches the controller (numpy only).

Every trajectory the policy node or the recorder sends (chunks, holds, teleop
targets) goes through ``filter_chunk``:

- Any NaN or infinite value rejects the whole command.
- Targets are clamped into the joint limits.
- Speed is limited on every segment the controller will execute, the first one
  included. The controller starts a new trajectory at its *switch time* from where
  it is then (``start``: the previous command's target at that time while one is
  executing, else the measured position; see ``runtime.loop``), and moves linearly
  to each point. Each target may move at most ``max_velocity * (t_i - t_{i-1})``
  from the previous (already limited) one, per joint, starting from ``start`` at
  ``start_time``.
- An arm outside its limits (moved by hand, or limits tightened while running) is
  brought back towards them at no more than the speed limit: the limit holds from
  where the arm really is, never from the clamped position. Such targets lie outside
  the limits until the arm is back; ``FilterReport.returning`` names those joints.

If the controller takes over earlier than ``start_time`` the limit still holds: the
previous command moved at most ``max_velocity`` in between (it was filtered too).
The filter never invents motion: a limited command moves less than it asked for.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class UnsafeChunk(ValueError):
    """The command must not be published; the message says why."""


def _joint_list(names: tuple[str, ...], index) -> list:
    idx = [int(i) for i in np.atleast_1d(index)]
    return [names[i] if i < len(names) else i for i in idx]


@dataclass(frozen=True)
class JointLimits:
    """Position and speed limits per joint. Invalid limits raise ValueError naming the
    joints (``names``, when given; their indices otherwise)."""

    lower: np.ndarray  # (J,) -inf where unknown
    upper: np.ndarray  # (J,) +inf where unknown
    max_velocity: np.ndarray  # (J,) rad/s (or m/s); +inf where unlimited
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        lo, hi, v = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (self.lower, self.upper, self.max_velocity))
        names = tuple(self.names)
        if not (lo.shape == hi.shape == v.shape):
            raise ValueError(f"joint limits need one value per joint: {lo.size} lower, {hi.size} upper, "
                             f"{v.size} max_velocity")
        if names and len(names) != lo.size:
            raise ValueError(f"joint limits have {lo.size} values for {len(names)} joints {list(names)}")
        for label, x in (("lower limit", lo), ("upper limit", hi), ("speed limit", v)):
            if np.any(np.isnan(x)):
                raise ValueError(f"{label} is NaN for joints {_joint_list(names, np.flatnonzero(np.isnan(x)))}")
        if np.any(lo > hi):
            bad = np.flatnonzero(lo > hi)
            detail = ", ".join(f"{n} ({lo[i]:g} > {hi[i]:g})" for n, i in zip(_joint_list(names, bad), bad))
            raise ValueError(f"lower limit above upper limit for joints {detail}")
        if np.any(v <= 0):
            raise ValueError(f"speed limit must be positive for joints {_joint_list(names, np.flatnonzero(v <= 0))}")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        object.__setattr__(self, "max_velocity", v)
        object.__setattr__(self, "names", names)

    def tightened(self, urdf: dict[str, tuple[float, float, float]]) -> "JointLimits":
        """These limits within a URDF's (joint name -> (lower, upper, max_velocity), as
        ``core.urdf.parse_joint_limits`` gives); ValueError naming joints they contradict."""
        lower, upper, speed = self.lower.copy(), self.upper.copy(), self.max_velocity.copy()
        for i, name in enumerate(self.names):
            if name in urdf:
                lo, hi, vel = urdf[name]
                lower[i], upper[i], speed[i] = max(lower[i], lo), min(upper[i], hi), min(speed[i], vel)
        return JointLimits(lower, upper, speed, self.names)

    @classmethod
    def unlimited(cls, n: int, max_velocity: float = np.inf) -> "JointLimits":
        return cls(np.full(n, -np.inf), np.full(n, np.inf), np.full(n, max_velocity))


@dataclass(frozen=True)
class FilterReport:
    positions: np.ndarray  # (n, J) what may be published
    limit_clamped: int  # values moved into the joint limits
    speed_limited: int  # values moved to respect the speed limit
    max_correction: float  # largest change made to any value
    returning: tuple = ()  # joints that started outside their limits and are brought back
    points_changed: int = 0  # points with any value changed


def filter_chunk(
    times: np.ndarray,
    positions: np.ndarray,
    start_time: float,
    start: np.ndarray,
    limits: JointLimits,
) -> FilterReport:
    """Limit a command whose controller starts it at ``start_time`` from ``start`` (J,)."""
    times = np.asarray(times, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64)
    start = np.asarray(start, dtype=np.float64)
    if pos.ndim != 2 or times.ndim != 1 or pos.shape[0] != times.shape[0] or pos.shape[0] == 0:
        raise UnsafeChunk(f"chunk shape {pos.shape} does not match {times.shape[0]} times")
    if pos.shape[1] != limits.lower.shape[0] or start.shape != (pos.shape[1],):
        raise UnsafeChunk(f"chunk has {pos.shape[1]} joints; limits {limits.lower.shape[0]}, "
                          f"start position {start.shape}")
    if not np.all(np.isfinite(pos)):
        raise UnsafeChunk("chunk contains NaN or infinite joint targets")
    if not (np.all(np.isfinite(times)) and np.isfinite(start_time)):
        raise UnsafeChunk("chunk contains NaN or infinite times")
    if not np.all(np.isfinite(start)):
        raise UnsafeChunk("the start position contains NaN or infinite values")
    if times[0] < start_time or np.any(np.diff(times) <= 0):
        raise UnsafeChunk(f"chunk times must start at or after the switch time {start_time:.3f} "
                          "and increase strictly")
    clamped = np.clip(pos, limits.lower, limits.upper)
    n_clamped = int(np.count_nonzero(clamped != pos))
    out = clamped.copy()
    prev, t_prev = start, start_time
    n_speed = 0
    for i in range(out.shape[0]):
        step = limits.max_velocity * (times[i] - t_prev)
        lim = np.clip(out[i], prev - step, prev + step)
        n_speed += int(np.count_nonzero(lim != out[i]))
        out[i] = lim
        prev, t_prev = lim, times[i]
    outside = np.flatnonzero((start < limits.lower) | (start > limits.upper))
    return FilterReport(out, n_clamped, n_speed, float(np.max(np.abs(out - pos))),
                        tuple(_joint_list(limits.names, outside)) if outside.size else (),
                        int(np.count_nonzero(np.any(out != pos, axis=1))))


def hold_command(start_time: float, start: np.ndarray, duration: float, limits: JointLimits) -> FilterReport:
    """A one-point command to stay where the controller will be at ``start_time``
    (moving back towards the limits, at the speed limit, if it is outside them)."""
    start = np.asarray(start, dtype=np.float64)
    return filter_chunk(np.array([start_time + duration]), start[None, :], start_time, start, limits)
