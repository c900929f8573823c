"""Cartesian teleop by damped least-squares differential IK (core/cartesian.py) on the
simulated arm's URDF and on a 6-joint arm: straight lines, bounded speeds at a
singularity, limits, a stale device, axis locks, the gripper."""
import numpy as np
import pytest

from dp_ros.core.cartesian import CartesianConfig, CartesianTeleop, Gripper, damped_least_squares
from dp_ros.core.safety import JointLimits
from dp_ros.kinematics import ArmKinematics
from dp_ros.sim.arm_description import TIP_FRAME, sim_arm_urdf
from dp_ros.sim.scene import HOME, JOINTS

from urdf_helpers import serial_urdf

DT = 0.1
LOWER, UPPER = np.array([-1.6, -1.6, -1.6, -1.8]), np.array([1.6, 1.6, 2.4, 1.8])
SPEED = 1.0
TRANSLATION = ("x", "y", "z")

# A 6-joint arm (yaw, pitch, pitch, roll, pitch, roll: a spherical wrist) for full twists.
SIX_JOINTS = ("j1", "j2", "j3", "j4", "j5", "j6")
SIX = serial_urdf("six", list(zip(SIX_JOINTS,
                                  ["0 0 0.1", "0 0 0.05", "0 0 0.3", "0.25 0 0", "0.05 0 0", "0.05 0 0"],
                                  ["0 0 1", "0 1 0", "0 1 0", "1 0 0", "0 1 0", "1 0 0"], [2] * 6)))


def sim_kinematics():
    return ArmKinematics.from_urdf(sim_arm_urdf(), JOINTS, TIP_FRAME)


def sim_limits(speed=SPEED):
    return JointLimits(LOWER, UPPER, np.full(4, speed), JOINTS)


def teleop(enabled=TRANSLATION, frame="base", **kw):
    cfg = CartesianConfig(enabled=enabled, frame=frame, **kw)
    return CartesianTeleop(JOINTS, sim_limits(), cfg, sim_kinematics())


def run(t: CartesianTeleop, start, deflection, seconds, kin):
    """Hold the device at ``deflection``; returns the targets and the tip positions."""
    t.reset(start)
    qs, tips = [], []
    for i in range(int(round(seconds / DT))):
        t.set_deflection(deflection, i * DT)
        qs.append(t.step(i * DT, DT))
        tips.append(kin.pose(qs[-1])[0])
    return np.array(qs), np.array(tips)


def line_error(tips, p0, direction):
    d = tips - p0
    along = d @ direction
    return float(np.max(np.linalg.norm(d - np.outer(along, direction), axis=1))), along


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_constant_twist_moves_the_tip_along_a_straight_line(axis):
    kin = sim_kinematics()
    p0 = kin.pose(HOME)[0]
    deflection = np.zeros(6)
    deflection[axis] = 1.0 if axis != 2 else -1.0  # z: down, towards the table
    direction = np.sign(deflection[:3])
    _, tips = run(teleop(), HOME, deflection, 2.0, kin)
    off, along = line_error(tips, p0, direction)
    print(f"\naxis {'xyz'[axis]}: {along[-1] * 1000:.1f} mm travelled, {off * 1000:.3f} mm off the line")
    assert off < 1e-3  # 1 mm over 10 cm
    assert along[-1] == pytest.approx(0.05 * 2.0, rel=0.02)  # 0.05 m/s for 2 s
    assert np.all(np.diff(along) > 0)  # monotonic: no overshoot and return


def test_a_tool_frame_twist_moves_along_the_tools_axis():
    kin = sim_kinematics()
    p0, R0 = kin.pose(HOME)
    _, tips = run(teleop(frame="tool"), HOME, [1, 0, 0, 0, 0, 0], 0.3, kin)
    step = tips[0] - p0
    assert np.dot(step, R0[:, 0]) / np.linalg.norm(step) > 0.999


def test_a_six_joint_arm_follows_a_full_twist():
    kin = ArmKinematics.from_urdf(SIX, SIX_JOINTS, "tool0")
    limits = JointLimits(np.full(6, -3.0), np.full(6, 3.0), np.full(6, 5.0), SIX_JOINTS)  # not binding here
    t = CartesianTeleop(SIX_JOINTS, limits, CartesianConfig(scales=(0.05, 0.05, 0.05, 0.3, 0.3, 0.3), deadzone=0.0),
                        kin)
    q0 = np.array([0.0, 0.3, 1.2, 0.2, -0.8, 0.1])
    p0, R0 = kin.pose(q0)
    t.reset(q0)
    u = np.array([0.4, -0.2, 0.3, 0.5, 0.0, -0.5])
    previous = q0
    for i in range(20):
        t.set_deflection(u, i * DT)
        q = t.step(i * DT, DT)
        assert np.abs(q - previous).max() < 5.0 * DT * 0.9  # the speed limit never scaled the motion
        previous = q
    p, R = kin.pose(q)
    v, w = 0.05 * u[:3], 0.3 * u[3:]
    from dp_ros.core.cartesian import _exp_rotation, _log_rotation

    position = np.linalg.norm(p - (p0 + v * 2.0))
    rotation = np.linalg.norm(_log_rotation(R @ (_exp_rotation(w * 2.0) @ R0).T))
    print(f"\n6 joints, 2 s of a full twist: {position * 1000:.3f} mm, {rotation * 1000:.3f} mrad from the ideal pose")
    assert position < 1e-3 and rotation < 5e-3


def test_a_four_joint_arm_with_every_axis_does_what_least_squares_allows():
    """Asked for y translation and no rotation, the 4-joint arm cannot do both (y needs the
    base to yaw); locking the rotations gives it the whole of y."""
    kin = sim_kinematics()
    p0 = kin.pose(HOME)[0]
    _, all_axes = run(teleop(enabled=("x", "y", "z", "roll", "pitch", "yaw")), HOME, [0, 1, 0, 0, 0, 0], 1.0, kin)
    _, locked = run(teleop(), HOME, [0, 1, 0, 0, 0, 0], 1.0, kin)
    moved_all, moved_locked = (all_axes[-1] - p0)[1], (locked[-1] - p0)[1]
    print(f"\ny travel in 1 s: {moved_all * 1000:.2f} mm with every axis, "
          f"{moved_locked * 1000:.1f} mm translation only")
    assert 0 <= moved_all < 0.2 * moved_locked and moved_locked == pytest.approx(0.05, rel=0.02)


def test_joint_speeds_stay_bounded_at_a_singularity():
    kin = sim_kinematics()
    stretched = np.array([0.0, 0.0, -np.pi / 2, 0.0])  # forearm and hand straight up: z is singular
    J = kin.jacobian(stretched)[:3]
    assert np.linalg.svd(J, compute_uv=False).min() < 1e-9
    dq = damped_least_squares(J, np.array([0.0, 0.0, 0.05]), damping=0.05, threshold=0.05)
    assert np.all(np.isfinite(dq)) and np.linalg.norm(dq) <= 0.05 / (2 * 0.05) + 1e-9
    # Driving into and along it: never faster than the limit, never NaN.
    for deflection in ([0, 0, 1, 0, 0, 0], [1, 0, 0.3, 0, 0, 0], [0, 1, 1, 0, 0, 0]):
        qs, _ = run(teleop(), stretched + [0, 0.05, 0, 0], deflection, 3.0, kin)
        speeds = np.abs(np.diff(np.vstack([stretched + [0, 0.05, 0, 0], qs]), axis=0)) / DT
        assert np.all(np.isfinite(qs)) and speeds.max() <= SPEED + 1e-9, speeds.max()


def test_limits_are_never_exceeded():
    kin = sim_kinematics()
    t = CartesianTeleop(JOINTS, sim_limits(0.8), CartesianConfig(scales=(0.3,) * 3 + (1.0,) * 3, frame="tool",
                                                                 enabled=("x", "y", "z", "pitch")), kin)
    rng = np.random.default_rng(0)
    t.reset(HOME)
    previous = HOME.copy()
    for i in range(3000):
        if i % 15 == 0:
            u = rng.uniform(-1, 1, 6)
        t.set_deflection(u, i * DT)
        q = t.step(i * DT, DT)
        assert np.all(q >= LOWER) and np.all(q <= UPPER)
        assert np.all(np.abs(q - previous) <= 0.8 * DT + 1e-9)
        previous = q
    reached = 0
    t.reset(HOME)
    for i in range(200):  # straight down into the table's side of the workspace: the limits stop it
        t.set_deflection([0, 0, -1, 0, 0, 0], i * DT)
        q = t.step(i * DT, DT)
        reached += bool(np.any(np.isclose(q, LOWER) | np.isclose(q, UPPER)))
    assert reached > 0 and np.all(q >= LOWER) and np.all(q <= UPPER)


def test_a_stale_device_stops_the_arm():
    t = teleop(timeout=0.5)
    t.reset(HOME)
    t.set_deflection([1, 0, 0, 0, 0, 0], 0.0)  # then silence
    qs = [t.step(i * DT, DT) for i in range(20)]
    moving = [not np.allclose(a, b) for a, b in zip(qs, qs[1:])]
    assert moving[:4] == [True] * 4 and not any(moving[6:])
    assert np.allclose(t.twist(1.0), 0)
    t.set_deflection([0.05, 0, 0, 0, 0, 0], 2.0)  # inside the deadzone: released too
    assert not t.twist(2.0).any()
    assert "6 finite values" in t.set_deflection([np.nan] * 6, 2.0)
    assert "the Cartesian mapping uses axis 5" in t.set_axes([0.0] * 4, 2.0)


def test_the_gripper_joint_moves_on_buttons_and_the_ik_leaves_it_alone():
    names = (*JOINTS, "gripper")
    kin = ArmKinematics.from_urdf(sim_arm_urdf(), names, TIP_FRAME, free=["gripper"])
    limits = JointLimits(np.append(LOWER, 0.0), np.append(UPPER, 0.04), np.append(np.full(4, SPEED), 0.05), names)
    t = CartesianTeleop(names, limits, CartesianConfig(enabled=TRANSLATION), kin,
                        gripper=Gripper(joint=4, open_position=0.04, closed_position=0.0, speed=0.02))
    t.reset(np.append(HOME, 0.0))
    assert t.command_gripper("toggle") is None  # closed (unknown) -> open
    qs = []
    for i in range(30):
        t.set_deflection([1, 0, 0, 0, 0, 0], i * DT)
        qs.append(t.step(i * DT, DT))
    g = np.array(qs)[:, 4]
    assert g[0] == pytest.approx(0.002) and g[-1] == pytest.approx(0.04) and np.all(np.diff(g) >= 0)
    t.command_gripper("close")
    assert t.step(3.0, DT)[4] == pytest.approx(0.038)
    no_gripper = teleop()
    assert "no gripper joint" in no_gripper.command_gripper("open")


def test_bad_configurations_are_refused():
    for kw, match in [(dict(scales=(1.0,) * 5), "6 finite values"), (dict(joy_axes=(0, 1, 2, 3, 4, -2)), "6 indices"),
                      (dict(enabled=("x", "w")), "name one or more"), (dict(enabled=()), "name one or more"),
                      (dict(frame="world"), "must be one of"), (dict(deadzone=1.0), "deadzone")]:
        with pytest.raises(ValueError, match=match):
            CartesianConfig(**kw).validate()
    other = ArmKinematics.from_urdf(sim_arm_urdf(), ("base_yaw", "shoulder"), "upper_arm")
    with pytest.raises(ValueError, match="are not the recorder's"):
        CartesianTeleop(JOINTS, sim_limits(), CartesianConfig(), other)
