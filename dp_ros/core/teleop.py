"""Teleop devices to joint position targets (numpy only).

- ``JoyTeleop``: gamepad or SpaceMouse axes (sensor_msgs/Joy) map to joint velocities
  (scale at full deflection, a deadzone), integrated into position targets at the
  control rate, clamped to the joint limits and the maximum speed. Axes older than a
  timeout count as released, so a disconnected device stops the arm.
- ``LeaderTeleop``: a leader arm's joint positions map to the follower's joints by name,
  ``target = offset + scale * leader``, clamped to the limits and rate-limited from
  the previous target, so a jump of the leader never yanks the follower.

Both start from the measured position (``reset``) and return the target to command
at each tick; the recorder stores exactly that target as the action.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dp_ros.core.safety import JointLimits


@dataclass(frozen=True)
class AxisMapping:
    axis: int  # index into Joy.axes
    joint: str
    scale: float  # joint velocity (rad/s or m/s) at full deflection; negative inverts


def apply_deadzone(value: float, deadzone: float) -> float:
    """0 inside the deadzone, then rescaled so full deflection is still +-1."""
    a = abs(value)
    if a <= deadzone:
        return 0.0
    return float(np.sign(value) * min((a - deadzone) / (1.0 - deadzone), 1.0))


class JoyTeleop:
    def __init__(self, joint_names: Sequence[str], mappings: Sequence[AxisMapping], limits: JointLimits,
                 deadzone: float = 0.1, timeout: float = 0.5):
        self.joint_names = tuple(joint_names)
        index = {n: i for i, n in enumerate(self.joint_names)}
        unknown = sorted({m.joint for m in mappings} - set(index))
        if unknown:
            raise ValueError(f"joy mapping names unknown joints {unknown}; the joints are {list(self.joint_names)}")
        if any(m.axis < 0 for m in mappings):
            raise ValueError("joy axis indices must be >= 0")
        if not 0.0 <= deadzone < 1.0:
            raise ValueError(f"deadzone {deadzone} must be in [0, 1)")
        self.mappings = [(m.axis, index[m.joint], m.scale) for m in mappings]
        self.limits = limits
        self.deadzone = deadzone
        self.timeout = timeout
        self.target: np.ndarray | None = None
        self._axes: tuple[float, ...] = ()
        self._axes_stamp = -np.inf

    def reset(self, measured: np.ndarray) -> None:
        self.target = np.clip(np.asarray(measured, dtype=float), self.limits.lower, self.limits.upper)

    def set_axes(self, axes: Sequence[float], stamp: float) -> str | None:
        """Store the newest axes; returns a reason when the message is unusable."""
        needed = max((a for a, _, _ in self.mappings), default=-1)
        if len(axes) <= needed:
            return f"joy message has {len(axes)} axes; the mapping uses axis {needed}"
        if not all(np.isfinite(axes)):
            return "joy message has NaN or infinite axes"
        self._axes, self._axes_stamp = tuple(axes), stamp
        return None

    def velocity(self, now: float) -> np.ndarray:
        v = np.zeros(len(self.joint_names))
        if now - self._axes_stamp > self.timeout:
            return v  # no fresh input: the operator let go (or the device is gone)
        for axis, j, scale in self.mappings:
            v[j] += scale * apply_deadzone(self._axes[axis], self.deadzone)
        return np.clip(v, -self.limits.max_velocity, self.limits.max_velocity)

    def step(self, now: float, dt: float) -> np.ndarray:
        """The target for this tick: the previous one moved by velocity * dt, within the limits."""
        if self.target is None:
            raise RuntimeError("JoyTeleop.step before reset(measured position)")
        self.target = np.clip(self.target + self.velocity(now) * dt, self.limits.lower, self.limits.upper)
        return self.target.copy()


class LeaderTeleop:
    def __init__(self, joint_names: Sequence[str], limits: JointLimits, leader_names: Sequence[str] | None = None,
                 offsets: Sequence[float] | None = None, scales: Sequence[float] | None = None):
        self.joint_names = tuple(joint_names)
        n = len(self.joint_names)
        self.leader_names = tuple(leader_names) if leader_names else self.joint_names
        if len(self.leader_names) != n:
            raise ValueError(f"leader joint names: {len(self.leader_names)} given for {n} follower joints")
        if len(set(self.leader_names)) != n:
            raise ValueError(f"leader joint names repeat: {list(self.leader_names)}")
        self.offsets = np.zeros(n) if offsets is None or len(offsets) == 0 else np.asarray(offsets, float)
        self.scales = np.ones(n) if scales is None or len(scales) == 0 else np.asarray(scales, float)
        if self.offsets.shape != (n,) or self.scales.shape != (n,):
            raise ValueError(f"leader offsets and scales need {n} values each (one per follower joint)")
        self.limits = limits
        self.target: np.ndarray | None = None
        self._desired: np.ndarray | None = None
        self._index_cache: dict[tuple[str, ...], list[int] | str] = {}

    def reset(self, measured: np.ndarray) -> None:
        self.target = np.clip(np.asarray(measured, dtype=float), self.limits.lower, self.limits.upper)
        self._desired = None

    def set_leader(self, names: Sequence[str], positions: Sequence[float]) -> str | None:
        key = tuple(names)
        idx = self._index_cache.get(key)
        if idx is None:
            where = {nm: i for i, nm in enumerate(names)}
            missing = [nm for nm in self.leader_names if nm not in where]
            idx = f"leader joint_states: missing {missing}" if missing else [where[nm] for nm in self.leader_names]
            self._index_cache[key] = idx
        if isinstance(idx, str):
            return idx
        if len(positions) != len(names):
            return f"leader joint_states: {len(positions)} positions for {len(names)} names"
        q = np.array([positions[i] for i in idx], dtype=float)
        if not np.all(np.isfinite(q)):
            return "leader joint_states: NaN or infinite position"
        self._desired = self.offsets + self.scales * q
        return None

    def step(self, now: float, dt: float) -> np.ndarray:
        """Move toward the leader's mapped position at no more than the maximum speed."""
        if self.target is None:
            raise RuntimeError("LeaderTeleop.step before reset(measured position)")
        if self._desired is not None:
            goal = np.clip(self._desired, self.limits.lower, self.limits.upper)
            step = self.limits.max_velocity * dt
            self.target = np.clip(goal, self.target - step, self.target + step)
        return self.target.copy()
