"""Cartesian teleoperation: a 6-axis device's twist to joint targets by damped
least-squares differential IK (numpy only; the kinematics are passed in).

Each tick the device's deflection (six values in [-1, 1]: x, y, z, roll, pitch, yaw,
from sensor_msgs/Joy axes or a geometry_msgs/Twist) becomes a twist, per-axis scale
times deflection after a deadzone, in the base frame or the tool frame. Locked axes
are left out of the IK: the tip may drift along them, and an arm with fewer than six
joints follows the remaining axes in the least-squares sense. The joint velocities
solve ``J dq = twist`` by damped least squares, with the damping growing only near a
singularity (Nakamura and Hanafusa: lambda^2 = (1 - (s_min / threshold)^2) lambda_max^2
when the smallest singular value is below the threshold), so joint speeds stay bounded
there. A joint that would pass its position limit stops at it and the others solve for
what remains; then all velocities are scaled by one factor so none exceeds its speed
limit (the direction of motion is kept).

Drift: the target is integrated from the previous target, and a reference pose moves
with the commanded twist; each tick half the gap between the reference and the
target's forward kinematics is added to the twist (closed-loop IK), so a constant twist
moves the tip along a straight line rather than along the linearisation's arcs. A gap
that grows past ``max_error`` (the arm held back by a limit) is clipped, so nothing
winds up, and the reference restarts from the tip whenever the device is released.

The device going silent for ``timeout`` seconds counts as released: the arm holds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from dp_ros.core.safety import JointLimits
from dp_ros.core.teleop import apply_deadzone

AXES = ("x", "y", "z", "roll", "pitch", "yaw")
FRAMES = ("base", "tool")


class Kinematics(Protocol):
    joint_names: tuple[str, ...]

    def pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def jacobian(self, q: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class CartesianConfig:
    scales: tuple[float, ...] = (0.05, 0.05, 0.05, 0.3, 0.3, 0.3)  # m/s, rad/s at full deflection
    joy_axes: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # Joy axis per twist component, -1 for none
    enabled: tuple[str, ...] = AXES  # the axes the IK follows; the others are locked (left out)
    frame: str = "base"
    deadzone: float = 0.1
    timeout: float = 0.5
    damping: float = 0.05  # lambda_max
    singular_threshold: float = 0.05  # smallest singular value below which damping sets in
    feedback: float = 0.5  # fraction of the reference gap closed per tick
    max_error: tuple[float, float] = (0.02, 0.1)  # m, rad: larger gaps are clipped

    def validate(self) -> CartesianConfig:
        if len(self.scales) != 6 or not all(np.isfinite(self.scales)):
            raise ValueError(f"cartesian scales need 6 finite values ({', '.join(AXES)}), got {list(self.scales)}")
        if len(self.joy_axes) != 6 or any(a < -1 for a in self.joy_axes):
            raise ValueError(f"cartesian joy axes need 6 indices ({', '.join(AXES)}; -1 for none), "
                             f"got {list(self.joy_axes)}")
        unknown = [a for a in self.enabled if a not in AXES]
        if unknown or not self.enabled:
            raise ValueError(f"cartesian enabled axes {list(self.enabled)}: name one or more of {list(AXES)}")
        if self.frame not in FRAMES:
            raise ValueError(f"cartesian frame {self.frame!r} must be one of {list(FRAMES)}")
        if not 0.0 <= self.deadzone < 1.0:
            raise ValueError(f"cartesian deadzone {self.deadzone} must be in [0, 1)")
        if not (self.timeout > 0 and self.damping >= 0 and self.singular_threshold > 0 and 0 <= self.feedback <= 1):
            raise ValueError("cartesian timeout and singular_threshold must be > 0, damping >= 0, feedback in [0, 1]")
        return self


def damped_least_squares(J: np.ndarray, v: np.ndarray, damping: float, threshold: float) -> np.ndarray:
    """dq minimizing |J dq - v|^2 + lambda^2 |dq|^2, lambda zero unless J is near singular."""
    if J.size == 0:
        return np.zeros(J.shape[1])
    U, S, Vt = np.linalg.svd(J, full_matrices=False)
    s_min = float(S.min())
    lam2 = 0.0 if s_min >= threshold else (1.0 - (s_min / threshold) ** 2) * damping ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(S ** 2 + lam2 > 1e-12, S / (S ** 2 + lam2), 0.0)
    return Vt.T @ (gain * (U.T @ v))


def solve_joint_velocities(J: np.ndarray, v: np.ndarray, q: np.ndarray, dt: float, limits: JointLimits,
                           active: Sequence[int], damping: float, threshold: float) -> np.ndarray:
    """Joint velocities for twist ``v`` (rows of ``J`` already selected): damped least
    squares over the ``active`` joints, a joint that would pass a position limit stopped
    there (the others re-solved for the rest), then one factor for the speed limits."""
    dq = np.zeros(len(q))
    free = list(active)
    rest = np.asarray(v, float).copy()
    lo = np.minimum(0.0, (limits.lower - q) / dt)  # never forces motion: 0 is always allowed
    hi = np.maximum(0.0, (limits.upper - q) / dt)
    while free:
        x = damped_least_squares(J[:, free], rest, damping, threshold)
        over = [k for k, j in enumerate(free) if not lo[j] - 1e-12 <= x[k] <= hi[j] + 1e-12]
        if not over:
            dq[free] = x
            break
        k = over[int(np.argmax([max(lo[free[k]] - x[k], x[k] - hi[free[k]]) for k in over]))]
        j = free.pop(k)
        dq[j] = float(np.clip(x[k], lo[j], hi[j]))
        rest = rest - J[:, j] * dq[j]
    with np.errstate(divide="ignore"):
        ratio = np.abs(dq) / limits.max_velocity
    worst = float(np.max(ratio)) if len(ratio) else 0.0
    return dq / worst if worst > 1.0 else dq


def _log_rotation(R: np.ndarray) -> np.ndarray:
    """The rotation vector (axis * angle) of a rotation matrix."""
    c = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(c))
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if angle < 1e-9:
        return 0.5 * w
    if np.pi - angle < 1e-6:  # near pi: the axis from the symmetric part
        axis = np.sqrt(np.maximum((np.diag(R) + 1.0) / 2.0, 0.0))
        axis *= np.where(w >= 0, 1.0, -1.0)
        return angle * axis / max(np.linalg.norm(axis), 1e-12)
    return angle / (2.0 * np.sin(angle)) * w


def _exp_rotation(w: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        return np.eye(3)
    k = w / angle
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


@dataclass(frozen=True)
class Gripper:
    """A gripper commanded as one of the arm's joints: buttons set it opening or closing."""
    joint: int  # index in joint_names
    open_position: float
    closed_position: float
    speed: float  # rad/s or m/s toward the commanded end


@dataclass
class _Reference:
    p: np.ndarray
    R: np.ndarray


class CartesianTeleop:
    """The Cartesian device: same interface as ``JoyTeleop`` (reset, step, target)."""

    def __init__(self, joint_names: Sequence[str], limits: JointLimits, config: CartesianConfig,
                 kinematics: Kinematics | None = None, gripper: Gripper | None = None):
        self.joint_names = tuple(joint_names)
        self.limits = limits
        self.config = config.validate()
        self.gripper = gripper
        self.kinematics: Kinematics | None = None
        self.target: np.ndarray | None = None
        self._rows = [AXES.index(a) for a in config.enabled]
        self._deflection = np.zeros(6)
        self._stamp = -np.inf
        self._ref: _Reference | None = None
        self._gripper_goal: float | None = None
        if kinematics is not None:
            self.set_kinematics(kinematics)

    def set_kinematics(self, kinematics: Kinematics) -> None:
        if tuple(kinematics.joint_names) != self.joint_names:
            raise ValueError(f"the kinematics' joints {list(kinematics.joint_names)} are not the recorder's "
                             f"{list(self.joint_names)}")
        self.kinematics = kinematics
        # The joints the IK moves: those with a Jacobian column (a joint on the chain always has
        # one: its axis), never the gripper.
        J = kinematics.jacobian(np.zeros(len(self.joint_names)))
        self._active = [j for j in range(len(self.joint_names))
                        if (self.gripper is None or j != self.gripper.joint) and np.any(J[:, j])]
        self._ref = None

    def reset(self, measured: np.ndarray) -> None:
        self.target = np.clip(np.asarray(measured, dtype=float), self.limits.lower, self.limits.upper)
        self._ref = None

    # ---- inputs ----

    def set_axes(self, axes: Sequence[float], stamp: float) -> str | None:
        """sensor_msgs/Joy axes; ``config.joy_axes`` picks one per twist component."""
        needed = max(self.config.joy_axes)
        if len(axes) <= needed:
            return f"joy message has {len(axes)} axes; the Cartesian mapping uses axis {needed}"
        values = [axes[a] if a >= 0 else 0.0 for a in self.config.joy_axes]
        return self.set_deflection(values, stamp)

    def set_deflection(self, values: Sequence[float], stamp: float) -> str | None:
        """Six deflections in [-1, 1] (x, y, z, roll, pitch, yaw), e.g. from a Twist."""
        x = np.asarray(values, float)
        if x.shape != (6,) or not np.all(np.isfinite(x)):
            return "the device's twist is not 6 finite values"
        self._deflection, self._stamp = np.clip(x, -1.0, 1.0), stamp
        return None

    def command_gripper(self, what: str) -> str | None:
        g = self.gripper
        if g is None:
            return "no gripper joint is configured (gripper.joint)"
        if what == "toggle":
            what = "close" if self._gripper_goal == g.open_position else "open"
        self._gripper_goal = g.open_position if what == "open" else g.closed_position
        return None

    # ---- the tick ----

    def twist(self, now: float) -> np.ndarray:
        """The commanded twist (6,) in the configured frame; zero when the device is silent."""
        if now - self._stamp > self.config.timeout:
            return np.zeros(6)
        u = np.array([apply_deadzone(v, self.config.deadzone) for v in self._deflection])
        return np.asarray(self.config.scales) * u

    def step(self, now: float, dt: float) -> np.ndarray:
        if self.target is None:
            raise RuntimeError("CartesianTeleop.step before reset(measured position)")
        q = self.target
        new = q.copy()
        v = self.twist(now)
        if self.kinematics is not None and np.any(v[self._rows]):
            new = q + self._joint_velocities(q, v, dt) * dt
        else:
            self._ref = None  # released (or no kinematics yet): hold, and start afresh next time
        g = self.gripper
        if g is not None and self._gripper_goal is not None:
            step = g.speed * dt
            new[g.joint] = float(np.clip(self._gripper_goal, q[g.joint] - step, q[g.joint] + step))
        self.target = np.clip(new, self.limits.lower, self.limits.upper)
        return self.target.copy()

    def _joint_velocities(self, q: np.ndarray, v: np.ndarray, dt: float) -> np.ndarray:
        cfg = self.config
        p, R = self.kinematics.pose(q)
        J = self.kinematics.jacobian(q)  # base axes
        to_task = np.eye(3) if cfg.frame == "base" else R.T  # base axes -> the twist's axes
        Jt = np.vstack([to_task @ J[:3], to_task @ J[3:]])
        if self._ref is None:
            self._ref = _Reference(p.copy(), R.copy())
        # The gap to the reference, in the twist's axes; locked axes are not held.
        err = np.concatenate([to_task @ (self._ref.p - p), to_task @ _log_rotation(self._ref.R @ R.T)])
        mask = np.zeros(6)
        mask[self._rows] = 1.0
        err *= mask
        for part, limit in ((slice(0, 3), cfg.max_error[0]), (slice(3, 6), cfg.max_error[1])):
            norm = float(np.linalg.norm(err[part]))
            if norm > limit:
                err[part] *= limit / norm
        desired = v + cfg.feedback * err / dt
        dq = solve_joint_velocities(Jt[self._rows], desired[self._rows], q, dt, self.limits, self._active,
                                    cfg.damping, cfg.singular_threshold)
        # Where the tip should be after this tick: the (clipped) gap carried, moved by the twist.
        from_task = to_task.T
        w = from_task @ (v[3:] * dt)
        self._ref = _Reference(p + from_task @ (err[:3] + v[:3] * dt),
                               _exp_rotation(w) @ _exp_rotation(from_task @ err[3:]) @ R)
        return dq
