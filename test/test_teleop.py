"""Joy and leader-arm mappings to joint targets."""
import numpy as np
import pytest

from dp_ros.core.safety import JointLimits
from dp_ros.core.teleop import AxisMapping, JoyTeleop, LeaderTeleop, apply_deadzone

JOINTS = ("j1", "j2", "j3")
LIMITS = JointLimits(np.array([-1.0, -1.0, -1.0]), np.array([1.0, 1.0, 0.3]), np.array([0.5, 0.5, 0.5]))


def test_deadzone():
    assert apply_deadzone(0.05, 0.1) == 0.0
    assert apply_deadzone(1.0, 0.1) == 1.0
    assert apply_deadzone(-0.55, 0.1) == pytest.approx(-0.5)


def test_joy_integrates_scaled_axes_at_the_control_rate():
    joy = JoyTeleop(JOINTS, [AxisMapping(0, "j1", 0.2), AxisMapping(3, "j2", -0.4)], LIMITS, deadzone=0.1)
    joy.reset(np.zeros(3))
    assert joy.set_axes([1.0, 0.0, 0.0, 0.55], stamp=0.0) is None
    q = joy.step(now=0.0, dt=0.1)
    assert np.allclose(q, [0.02, -0.02, 0.0])  # 0.2 rad/s and -0.4 * 0.5 rad/s for 0.1 s
    for k in range(1, 5):
        q = joy.step(now=0.01 * k, dt=0.1)
    assert np.allclose(q, [0.1, -0.1, 0.0])


def test_joy_clamps_to_speed_and_limits_and_stops_without_input():
    joy = JoyTeleop(JOINTS, [AxisMapping(0, "j3", 5.0)], LIMITS, timeout=0.5)
    joy.reset(np.zeros(3))
    joy.set_axes([1.0], stamp=0.0)
    assert joy.step(0.0, 0.1)[2] == pytest.approx(0.05)  # 5 rad/s requested, 0.5 allowed
    for k in range(20):
        q = joy.step(0.01 * k, 0.1)
    assert q[2] == pytest.approx(0.3)  # the upper limit
    held = joy.step(now=2.0, dt=0.1)  # axes 2 s old: released
    assert np.array_equal(held, q)


def test_joy_rejects_bad_messages_and_config():
    joy = JoyTeleop(JOINTS, [AxisMapping(4, "j1", 1.0)], LIMITS)
    assert "uses axis 4" in joy.set_axes([0.0, 0.0], 0.0)
    assert "NaN" in joy.set_axes([0, 0, 0, 0, float("nan")], 0.0)
    with pytest.raises(ValueError, match="unknown joints \\['elbow'\\]"):
        JoyTeleop(JOINTS, [AxisMapping(0, "elbow", 1.0)], LIMITS)
    with pytest.raises(RuntimeError, match="before reset"):
        JoyTeleop(JOINTS, [], LIMITS).step(0.0, 0.1)


def test_leader_maps_by_name_with_offsets_scales_and_rate_limit():
    lead = LeaderTeleop(JOINTS, LIMITS, leader_names=("l1", "l2", "l3"), offsets=[0.1, 0.0, 0.0],
                        scales=[1.0, -1.0, 1.0])
    lead.reset(np.zeros(3))
    assert lead.set_leader(["extra", "l3", "l2", "l1"], [9.0, 0.02, 0.03, 0.0]) is None
    assert np.allclose(lead.step(0.0, 0.1), [0.05, -0.03, 0.02])  # j1 wants 0.1, limited to 0.05 per tick
    assert np.allclose(lead.step(0.1, 0.1), [0.1, -0.03, 0.02])
    lead.set_leader(["l1", "l2", "l3"], [5.0, 0.0, 5.0])
    for k in range(40):
        q = lead.step(0.1 * k, 0.1)
    assert np.allclose(q, [1.0, 0.0, 0.3])  # clamped into the limits


def test_leader_rejects_bad_input():
    lead = LeaderTeleop(JOINTS, LIMITS)
    assert "missing ['j3']" in lead.set_leader(["j1", "j2"], [0.0, 0.0])
    assert "NaN" in lead.set_leader(list(JOINTS), [0.0, float("nan"), 0.0])
    with pytest.raises(ValueError, match="3 values each"):
        LeaderTeleop(JOINTS, LIMITS, offsets=[0.0])
    with pytest.raises(ValueError, match="repeat"):
        LeaderTeleop(JOINTS, LIMITS, leader_names=("a", "a", "b"))
