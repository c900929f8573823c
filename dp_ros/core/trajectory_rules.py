"""What a ros2_control joint_trajectory_controller accepts on ~/joint_trajectory.

From ros2_controllers' own validation (see DESIGN.md): every controller joint named
(unless partial goals are allowed), no unknown or repeated names; points non-empty;
each point has one position per joint; time_from_start strictly increasing; a
non-zero header stamp whose stamp plus the last point's time_from_start is already
past is rejected; a non-zero velocity on the last point is rejected (unless allowed).
Used before every publish and by the tests on every published message.
"""
from __future__ import annotations

import math
from typing import Sequence


def trajectory_violations(
    joint_names: Sequence[str],
    stamp: float,
    times_from_start: Sequence[float],
    positions: Sequence[Sequence[float]],
    velocities: Sequence[Sequence[float]],
    controller_joints: Sequence[str],
    now: float,
    allow_partial: bool = False,
) -> list[str]:
    """Every rule the message breaks (empty when the controller will accept it)."""
    errors = []
    names = list(joint_names)
    if len(set(names)) != len(names):
        errors.append(f"repeated joint names {names}")
    unknown = sorted(set(names) - set(controller_joints))
    if unknown:
        errors.append(f"unknown joints {unknown}")
    missing = sorted(set(controller_joints) - set(names))
    if missing and not allow_partial:
        errors.append(f"missing joints {missing}")
    if len(times_from_start) == 0:
        errors.append("no points")
        return errors
    for i, p in enumerate(positions):
        if len(p) != len(names):
            errors.append(f"point {i} has {len(p)} positions for {len(names)} joints")
        elif not all(math.isfinite(x) for x in p):
            errors.append(f"point {i} has non-finite positions")
    for i in range(1, len(times_from_start)):
        if not times_from_start[i] > times_from_start[i - 1]:
            errors.append(f"time_from_start not strictly increasing at point {i}")
            break
    if times_from_start[0] < 0:
        errors.append("negative time_from_start")
    if stamp != 0.0 and stamp + times_from_start[-1] < now:
        errors.append(f"stamp {stamp:.3f} + last time_from_start {times_from_start[-1]:.3f} is already past ({now:.3f})")
    if velocities and velocities[-1] and any(v != 0.0 for v in velocities[-1]):
        errors.append("non-zero velocity on the last point")
    return errors
