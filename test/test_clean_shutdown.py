"""Ctrl-C under ``ros2 launch``: each node gets SIGINT twice (from the terminal and
forwarded by launch), back to back or while it is already stopping. Every node must exit
0 without a traceback, the policy node and the recorder with a safe hold as their last
command, the recorder with its episode closed (issue 14.16)."""
import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from dp_ros.dataset.store import STAGING_DIR, EpisodeStore

from ros_helpers import JOINTS, FakeSensors, Spinner, make_checkpoint, wait_for

pytestmark = pytest.mark.slow

SCRIPT = "import sys; from {module} import main; sys.exit(main(sys.argv[1:]))"
TOPIC = "/joint_trajectory_controller/joint_trajectory"


class Commands:
    """Every trajectory on the controller's topic, in a node of the test process."""

    def __init__(self, ctx):
        self.node = rclpy.create_node("controller_stand_in", context=ctx)
        self.msgs = []
        self.node.create_subscription(JointTrajectory, TOPIC, self.msgs.append,
                                      QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))


def start(module, *ros_args):
    # PYTHONFAULTHANDLER: a child that hangs is sent SIGABRT and prints every thread's stack.
    return subprocess.Popen([sys.executable, "-c", SCRIPT.format(module=module), "--ros-args", *ros_args],
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONFAULTHANDLER": "1"})


@contextlib.contextmanager
def rig(ros, *nodes):
    """Spin the test's nodes; on the way out kill a child still running and clean up."""
    spin = Spinner(ros, *nodes)
    procs = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        spin.stop()
        for n in nodes:
            n.destroy_node()


def interrupt_twice(proc, gap):
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(gap)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGABRT)  # the stacks, then death
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"did not stop within 30 s:\n{out}")
    assert "Traceback" not in out and "Segmentation" not in out, out
    assert proc.returncode == 0, out
    return out


def tfs(point):
    return point.time_from_start.sec + point.time_from_start.nanosec * 1e-9


@pytest.mark.parametrize("gap", [0.0, 0.3])
def test_policy_node_stops_cleanly_with_a_hold(ros, tmp_path, gap):
    ckpt = make_checkpoint(tmp_path / "policy")
    commands = Commands(ros)
    with rig(ros, FakeSensors(ros), commands.node) as procs:
        procs.append(proc := start("dp_ros.nodes.policy_node", "-p", f"model_path:={ckpt}", "-p", "backend:=pytorch",
                                   "-p", "device:=cpu", "-p", "enabled_on_start:=true", "-p", "max_joint_speed:=10.0"))
        assert wait_for(lambda: len(commands.msgs) >= 2, timeout=60), "the node publishes chunks"
        interrupt_twice(proc, gap)
        time.sleep(0.3)
        last = commands.msgs[-1]
        # A hold: one point, execution_latency + dt after its stamp (a chunk's are whole periods after t_obs).
        assert len(last.points) == 1 and tfs(last.points[0]) == pytest.approx(0.02 + 0.1), "the last is a hold"


@pytest.mark.parametrize("gap", [0.0, 0.3])
def test_recorder_stops_cleanly_with_its_episode_closed_and_a_hold(ros, tmp_path, gap):
    commands = Commands(ros)
    path = tmp_path / "demos"
    with rig(ros, FakeSensors(ros), commands.node) as procs:
        procs.append(proc := start("dp_ros.nodes.teleop_recorder", "-p", f"dataset_path:={path}",
                                   "-p", f"joint_names:=[{','.join(JOINTS)}]", "-p", "cameras:=[camera_0]",
                                   "-p", "image_height:=48", "-p", "image_width:=64"))
        client = commands.node.create_client(Trigger, "/teleop_recorder/start_episode")
        assert client.wait_for_service(timeout_sec=60)

        def started():
            future = client.call_async(Trigger.Request())
            return wait_for(future.done, 5) and future.result().success

        assert wait_for(started, timeout=20)
        time.sleep(0.5)  # recording
        out = interrupt_twice(proc, gap)
        time.sleep(0.3)
        assert "discarded" in out  # an interrupted demonstration is not kept
        last = commands.msgs[-1]
        before = np.array(commands.msgs[-2].points[0].positions)
        assert len(last.points) == 1 and np.allclose(last.points[0].positions, before), "the last is a hold"
    assert not (path / STAGING_DIR).exists()
    with EpisodeStore.open(path) as store:
        assert store.n_episodes == 0


@pytest.mark.parametrize("gap", [0.0, 0.3])
def test_simulator_stops_cleanly(ros, gap):
    probe = rclpy.create_node("probe", context=ros)
    with rig(ros, probe) as procs:
        procs.append(proc := start("dp_ros.sim.sim_node", "-p", "camera_rate:=0.0"))
        assert probe.create_client(Trigger, "/sim_arm/reset").wait_for_service(timeout_sec=60)
        interrupt_twice(proc, gap)
