"""The last check before a chunk reaches the controller (numpy only).

- Any NaN or infinite value rejects the whole chunk.
- Positions are clamped into the joint limits.
- Speed is limited: starting from the measured position at ``now``, each target may
  move at most ``max_velocity * (t_i - t_{i-1})`` from the previous (already limited)
  one, per joint. The first segment is measured from where the arm is, so a chunk that
  starts far from the arm is slowed down, not jumped to.

The filter never invents motion: a limited chunk moves less than the model asked.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class UnsafeChunk(ValueError):
    """The chunk must not be published; the message says why."""


@dataclass(frozen=True)
class JointLimits:
    lower: np.ndarray  # (J,) -inf where unknown
    upper: np.ndarray  # (J,) +inf where unknown
    max_velocity: np.ndarray  # (J,) rad/s (or m/s); +inf where unlimited

    def __post_init__(self) -> None:
        lo, hi, v = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (self.lower, self.upper, self.max_velocity))
        if not (lo.shape == hi.shape == v.shape):
            raise ValueError("lower, upper and max_velocity must have one entry per joint")
        if np.any(np.isnan(lo)) or np.any(np.isnan(hi)) or np.any(np.isnan(v)):
            raise ValueError("joint limits contain NaN")
        if np.any(lo > hi):
            bad = np.nonzero(lo > hi)[0].tolist()
            raise ValueError(f"lower limit above upper limit for joints {bad}")
        if np.any(v <= 0):
            raise ValueError("max_velocity must be positive")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        object.__setattr__(self, "max_velocity", v)

    @classmethod
    def unlimited(cls, n: int, max_velocity: float = np.inf) -> "JointLimits":
        return cls(np.full(n, -np.inf), np.full(n, np.inf), np.full(n, max_velocity))


@dataclass(frozen=True)
class FilterReport:
    positions: np.ndarray  # (n, J) what may be published
    limit_clamped: int  # values moved into the joint limits
    speed_limited: int  # values moved to respect the speed limit
    max_correction: float  # largest change made to any value


def filter_chunk(
    times: np.ndarray,
    positions: np.ndarray,
    now: float,
    measured: np.ndarray,
    limits: JointLimits,
) -> FilterReport:
    times = np.asarray(times, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64)
    measured = np.asarray(measured, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[0] != times.shape[0] or pos.shape[0] == 0:
        raise UnsafeChunk(f"chunk shape {pos.shape} does not match {times.shape[0]} times")
    if pos.shape[1] != limits.lower.shape[0] or measured.shape != (pos.shape[1],):
        raise UnsafeChunk(f"chunk has {pos.shape[1]} joints; limits {limits.lower.shape[0]}, "
                          f"measured position {measured.shape}")
    if not np.all(np.isfinite(pos)):
        raise UnsafeChunk("chunk contains NaN or infinite joint targets")
    if not np.all(np.isfinite(times)):
        raise UnsafeChunk("chunk contains NaN or infinite times")
    if not np.all(np.isfinite(measured)):
        raise UnsafeChunk("measured joint position contains NaN or infinite values")
    if times[0] < now or np.any(np.diff(times) <= 0):
        raise UnsafeChunk("chunk times must start after now and increase strictly")
    clamped = np.clip(pos, limits.lower, limits.upper)
    n_clamped = int(np.count_nonzero(clamped != pos))
    out = clamped.copy()
    prev, t_prev = np.clip(measured, limits.lower, limits.upper), now
    n_speed = 0
    for i in range(out.shape[0]):
        step = limits.max_velocity * (times[i] - t_prev)
        lim = np.clip(out[i], prev - step, prev + step)
        n_speed += int(np.count_nonzero(lim != out[i]))
        out[i] = lim
        prev, t_prev = lim, times[i]
    return FilterReport(out, n_clamped, n_speed, float(np.max(np.abs(out - pos))))
