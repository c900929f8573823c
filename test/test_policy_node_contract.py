"""The policy node's promises beyond the controller's rules (issue 14): limits checked
and named at start-up, the controller's own joints, no stale chunk after ~/enable or
~/reset, every failure in diagnostics, no graph capture inside the control loop."""
import threading
import time

import pytest
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import SetBool

from dp_ros.nodes import policy_node
from dp_ros.nodes.policy_node import PolicyNode, stamp_to_sec

from ros_helpers import params, wait_for
from policy_rig import URDF

pytestmark = pytest.mark.slow


def cpu(ckpt, **kw):
    return params(model_path=str(ckpt), backend="pytorch", device="cpu", **kw)


@pytest.mark.parametrize("lower, upper, match", [
    ([0.0, 1.0, 0.0], [1.0, 0.5, 1.0], r"lower limit above upper limit for joints elbow \(1 > 0.5\)"),
    ([0.0, 0.0], [1.0, 1.0], r"joint_lower_limits needs 3 values, one per joint in \['shoulder', 'elbow', 'wrist'\]"),
    ([0.0, 0.0, float("nan")], [1.0, 1.0, 1.0], r"joint_lower_limits is NaN for joints \['wrist'\]"),
])
def test_bad_joint_limits_stop_the_node_naming_the_joint(ros, checkpoint, lower, upper, match):
    with pytest.raises(ValueError, match=match):
        PolicyNode(context=ros, parameter_overrides=cpu(checkpoint, joint_lower_limits=lower,
                                                        joint_upper_limits=upper))


def test_limit_and_latency_changes_are_checked_together(ros, checkpoint):
    node = PolicyNode(context=ros, parameter_overrides=cpu(checkpoint))
    try:
        (res,) = node.set_parameters([Parameter("joint_upper_limits", value=[1.0, -2.0, 1.0])])
        assert res.successful  # lower is -inf
        (res,) = node.set_parameters([Parameter("joint_lower_limits", value=[0.0, 0.0, 0.0])])
        assert not res.successful and "elbow (0 > -2)" in res.reason
        with pytest.raises(ValueError, match="execution_latency 0.35 s must be shorter"):  # T_a = 4: 0.3 s
            PolicyNode(context=ros, parameter_overrides=cpu(checkpoint, execution_latency=0.35, bridge_steps=0))
        # The bridge is published too: with it the same latency leaves actions to publish.
        (res,) = node.set_parameters([Parameter("execution_latency", value=0.35)])
        assert res.successful
    finally:
        node.destroy_node()


@pytest.mark.parametrize("joints, expect", [
    (["shoulder", "elbow", "wrist", "gripper"], "missing joints ['gripper']"),
    (["elbow", "shoulder"], "unknown joints ['wrist']"),
])
def test_messages_are_checked_against_the_controllers_joints(rig, joints, expect):
    r = rig(controller_joints=joints)
    assert wait_for(lambda: any(s["state"] == "unsafe" for s in r.statuses()), timeout=20)
    assert r.trajectories() == []
    reasons = " ".join(" ".join(s["reasons"]) for s in r.statuses() if s["state"] == "unsafe")
    assert f"controller would reject: {expect}" in reasons
    assert wait_for(lambda: any(expect in d.message and d.level == d.ERROR for d in r.diagnostics()), 10)


def test_the_robots_joint_names_stand_in_for_the_controllers(rig):
    """Without controller_joints (and without control_msgs, as here), every name seen on
    /joint_states is what the controller may have: ours must be among them."""
    r = rig()
    assert wait_for(lambda: len(r.trajectories()) >= 1, timeout=20)
    assert r.node._controller_joint_list() == (("elbow", "gripper", "shoulder", "wrist"), True)


def test_robot_description_that_contradicts_the_parameters_stops_motion(rig):
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    # The parameters keep the shoulder in [0.5, 1]; the URDF says [-0.05, 0.05]: nothing is left.
    r = rig(joint_lower_limits=[0.5, -3.0, -3.0], joint_upper_limits=[1.0, 3.0, 3.0])
    assert wait_for(lambda: len(r.trajectories()) >= 1, timeout=20)
    r.sensors.create_publisher(String, "/robot_description", latched).publish(String(data=URDF))
    assert wait_for(lambda: any(s["state"] == "bad_limits" for s in r.statuses()), timeout=20)
    time.sleep(0.6)  # a chunk planned before may still land
    r.rec.clear()
    time.sleep(1.2)
    assert r.trajectories() == []
    bad = next(s for s in r.statuses() if s["state"] == "bad_limits")
    assert "shoulder (0.5 > 0.05)" in bad["reasons"][0] and "the URDF" in bad["reasons"][0]
    assert wait_for(lambda: any("shoulder" in d.message and d.level == d.ERROR for d in r.diagnostics()), 10)
    # A description that cannot be read stops motion too (no unchecked limits).
    r.sensors.create_publisher(String, "/robot_description", latched).publish(String(data="<robot"))
    assert wait_for(lambda: any("unusable" in " ".join(s["reasons"]) for s in r.statuses()), timeout=20)


def test_an_inference_across_disable_and_enable_is_dropped(rig):
    """Issue 14.9: the chunk of an inference that started before ~/enable false/true was
    published after the re-enable."""
    r = rig()
    gate, entered = threading.Event(), threading.Event()
    real = r.node.runner.predict

    held_t_obs = []

    def held_back(*a, **k):
        held_t_obs.append(k["t_obs"])  # its chunk would be stamped t_obs (action_time_offset 0)
        entered.set()
        gate.wait(10)
        return real(*a, **k)

    r.node.runner.predict = held_back
    assert entered.wait(20), "an inference in flight"
    assert r.call(SetBool, "/dp_policy/enable", SetBool.Request(data=False)).success
    assert r.call(SetBool, "/dp_policy/enable", SetBool.Request(data=True)).success
    t_enable = r.node.get_clock().now().nanoseconds * 1e-9
    r.node.runner.predict = real
    gate.set()
    assert wait_for(lambda: any(s["state"] == "discarded" for s in r.statuses()), timeout=10)
    assert wait_for(lambda: sum(len(m.points) > 1 for _, m in r.trajectories()
                                if stamp_to_sec(m.header.stamp) > t_enable) >= 1, timeout=20)
    # What arrived after the re-enable (the hold on disable is one point): only chunks of
    # newer observations than the held-back inference's.
    chunks = [m for arrival, m in r.trajectories() if arrival > t_enable and len(m.points) > 1]
    assert chunks and all(stamp_to_sec(m.header.stamp) > held_t_obs[0] + 1e-6 for m in chunks), "a chunk from before"


def test_a_failure_while_planning_shows_in_diagnostics_and_status(rig):
    """Issue 14.10: an exception inside planning was logged while diagnostics stayed OK."""
    r = rig()
    assert wait_for(lambda: len(r.trajectories()) >= 1, timeout=20)

    def broken(*a, **k):
        raise KeyError("no such stream")

    r.node._planner.plan = broken
    assert wait_for(lambda: any(s["state"] == "error" and "KeyError" in s["reasons"][0] for s in r.statuses()), 10)
    assert wait_for(lambda: any(d.level == d.ERROR and "planning failed: KeyError" in d.message
                                for d in r.diagnostics()), 10)
    last = r.diagnostics()[-1]
    assert int(next(v.value for v in last.values if v.key == "chunks_failed")) >= 1


def test_step_counts_are_prepared_at_startup_and_others_refused(ros, checkpoint, monkeypatch):
    """Issue 14.11: on a graph backend a new step count was captured inside the control
    loop. Now the counts are prepared at start-up, and a change to another is refused."""
    prepared = []
    real = policy_node.load_runner

    def graph_like(*a, **k):
        runner = real(*a, **k)
        runner.backend.prepare = prepared.append  # a backend that captures one graph per step count
        return runner

    monkeypatch.setattr(policy_node, "load_runner", graph_like)
    node = PolicyNode(context=ros, parameter_overrides=cpu(checkpoint, prepared_inference_steps=[3, 10]))
    try:
        assert sorted(prepared) == [3, 10]
        (res,) = node.set_parameters([Parameter("num_inference_steps", value=5)])
        assert not res.successful and "5 DDIM steps are not prepared" in res.reason and "[3, 10]" in res.reason
        (res,) = node.set_parameters([Parameter("num_inference_steps", value=3)])
        assert res.successful and sorted(prepared) == [3, 10]  # nothing captured on the way
    finally:
        node.destroy_node()
    # A backend without graphs takes any count.
    monkeypatch.setattr(policy_node, "load_runner", real)
    node = PolicyNode(context=ros, parameter_overrides=cpu(checkpoint))
    try:
        (res,) = node.set_parameters([Parameter("num_inference_steps", value=5)])
        assert res.successful
    finally:
        node.destroy_node()


def test_timestep_spacing_parameter(ros, checkpoint):
    node = PolicyNode(context=ros, parameter_overrides=cpu(checkpoint, timestep_spacing="leading"))
    try:
        assert node.cfg.noise.timestep_spacing == "leading"
        assert node.runner.backend.policy.plan(1).timesteps.tolist() == [0]
    finally:
        node.destroy_node()
    node = PolicyNode(context=ros, parameter_overrides=cpu(checkpoint))
    try:
        assert node.runner.backend.policy.plan(1).timesteps.tolist() == [80]  # the checkpoint's default: capped
    finally:
        node.destroy_node()
    with pytest.raises(ValueError, match="timestep_spacing 'even' must be one of"):
        PolicyNode(context=ros, parameter_overrides=cpu(checkpoint, timestep_spacing="even"))
