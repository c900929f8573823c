"""The simulated arm node: rates, stamps, the controller topic, success and reset."""
import json
import time

import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from geometry_msgs.msg import PoseArray
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from dp_ros.nodes.common import sec_to_duration, stamp_to_sec
from dp_ros.sim.scene import HOME, JOINTS
from dp_ros.sim.sim_node import SimArmNode

from ros_helpers import Recorder, Spinner, params, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def rig():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    sim = SimArmNode(context=ctx, parameter_overrides=params(seed=7))
    rec = Recorder(ctx, {"js": (JointState, "/joint_states"), "img": (Image, "/camera/image_raw"),
                         "success": (Bool, "/sim_arm/success"), "task": (String, "/sim_arm/task"),
                         "targets": (PoseArray, "/targets")},
                   qos=rclpy.qos.qos_profile_sensor_data)
    pub = rec.create_publisher(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                               QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    spin = Spinner(ctx, sim, rec)
    yield sim, rec, pub
    spin.stop()
    sim.destroy_node()
    rec.destroy_node()
    rclpy.try_shutdown(context=ctx)


def send(pub, q, tfs=1.0, names=JOINTS):
    pub.publish(JointTrajectory(joint_names=list(names), points=[
        JointTrajectoryPoint(positions=[float(x) for x in q], time_from_start=sec_to_duration(tfs))]))


def test_rates_and_stamps(rig):
    sim, rec, _ = rig
    time.sleep(2.0)
    js, img = rec.get("js"), rec.get("img")
    span = js[-1][0] - js[0][0]
    # Real time on a shared 2-core CPU: a Python timer in one executor with the
    # recorder and the renderer reaches 100-200 of its nominal 200 Hz (CI measured
    # 99.99 Hz under load). This asserts the physics timer keeps running well above
    # the 10 Hz control rate, not its nominal rate, which real time cannot promise.
    assert len(js) / span >= 50, f"joint states at {len(js) / span:.0f} Hz"
    stamps = [stamp_to_sec(m.header.stamp) for _, m in js]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "joint state stamps must increase"
    assert 10 <= len(img) / (img[-1][0] - img[0][0]) <= 40  # nominal 30 Hz, same caveat
    arrival, msg = img[-1]
    assert msg.encoding == "rgb8" and (msg.height, msg.width) == (96, 96) and len(msg.data) == 96 * 96 * 3
    assert 0 <= arrival - stamp_to_sec(msg.header.stamp) < 0.2  # real stamps, taken when rendered
    assert list(js[-1][1].name) == list(JOINTS) and np.allclose(js[-1][1].position, HOME, atol=1e-2)
    targets = rec.get("targets")
    assert 10 <= len(targets) / (targets[-1][0] - targets[0][0]) <= 25  # nominal 20 Hz
    poses = targets[-1][1].poses
    xyz = np.array([[p.position.x, p.position.y, p.position.z] for p in poses])
    np.testing.assert_allclose(xyz, sim.sim.target_positions())
    assert xyz[0, 1] > 0 > xyz[1, 1] and xyz[0, 0] == xyz[1, 0]  # left, then right, mirrored


def test_reaching_a_target_succeeds_and_reset_randomizes(rig):
    sim, rec, pub = rig
    assert wait_for(lambda: rec.get("task"), 5)
    task = json.loads(rec.get("task")[-1][1].data)
    assert task["success"] is False and task["goal"] == -1
    goal = sim.sim.solve_ik(np.array(task["targets"][0]), height=0.02)
    send(pub, goal, tfs=1.0)
    assert wait_for(lambda: rec.get("success") and rec.get("success")[-1][1].data, 6)
    assert json.loads(rec.get("task")[-1][1].data)["goal"] == 0

    client = rec.create_client(Trigger, "/sim_arm/reset")
    assert client.wait_for_service(timeout_sec=5)
    fut = client.call_async(Trigger.Request())
    assert wait_for(fut.done, 5) and fut.result().success
    new_targets = json.loads(fut.result().message)["targets"]
    assert not np.allclose(new_targets, task["targets"])
    rec.clear()
    assert wait_for(lambda: rec.get("js") and np.allclose(rec.get("js")[-1][1].position, HOME, atol=1e-2), 5)
    assert wait_for(lambda: rec.get("success") and not rec.get("success")[-1][1].data, 5)


def test_rejected_trajectories_leave_the_arm_holding(rig):
    sim, rec, pub = rig
    time.sleep(0.5)
    send(pub, [0.5, 0.5, 0.5], names=JOINTS[:3])  # a missing joint: rejected
    send(pub, [0.5] * 4, names=[*JOINTS[:3], "gripper"])  # an unknown joint: rejected
    time.sleep(1.0)
    assert sim.sim.controller.rejected == 2 and "unknown joints" in sim.sim.controller.last_error
    assert np.allclose(rec.get("js")[-1][1].position, HOME, atol=1e-2)
