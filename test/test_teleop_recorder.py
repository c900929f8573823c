"""The teleop recorder in-process: a fake arm that follows the commanded targets,
fake cameras whose pixels count frames, and a Joy publisher.

The stored episodes must hold exactly what was published at each tick: the newest
frame at or before the tick, the joint positions interpolated at the tick, and as the
action the target the arm should have reached at the tick (the one sent a tick before).
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState, Joy
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from dp_ros.core.trajectory_rules import trajectory_violations
from dp_ros.dataset.store import EpisodeStore
from dp_ros.nodes.teleop_recorder import TeleopRecorder

from ros_helpers import Spinner, params, wait_for

JOINTS = ("j1", "j2", "j3")
CAMS = ("cam_a", "cam_b")
H, W = 24, 32

pytestmark = pytest.mark.slow


class FakeArm(Node):
    """Follows the last commanded target; publishes joints at 200 Hz, cameras at 30 Hz,
    Joy at 50 Hz; remembers everything it published and received."""

    def __init__(self, context, follow=True):
        super().__init__("fake_arm", context=context)
        self.lock = threading.Lock()
        self.q = np.zeros(3)
        self.follow = follow
        self.joint_log, self.frame_log, self.targets = [], {c: [] for c in CAMS}, []
        self.cam_on = {c: True for c in CAMS}
        self.count = 0
        self.axes = [0.0] * 8
        self.buttons = [0] * 8
        self.jpub = self.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
        self.cpub = {c: self.create_publisher(Image, f"/{c}/image_raw", qos_profile_sensor_data) for c in CAMS}
        self.joy = self.create_publisher(Joy, "/joy", qos_profile_sensor_data)
        self.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", self._cmd,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.create_timer(1 / 200, self._joints)
        self.create_timer(1 / 30, self._cams)
        self.create_timer(1 / 50, self._joy)

    def _cmd(self, msg):
        with self.lock:
            self.targets.append((self.get_clock().now().nanoseconds * 1e-9, msg))
            if self.follow:
                self.q = np.array(msg.points[-1].positions)

    def sent(self):
        """(stamp, target) of every command received, in order."""
        with self.lock:
            return [(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, np.array(m.points[-1].positions))
                    for _, m in self.targets]

    def _joints(self):
        stamp = self.get_clock().now()
        with self.lock:
            q = self.q.copy()
        msg = JointState(name=["other", *JOINTS], position=[9.0, *q.tolist()])
        msg.header.stamp = stamp.to_msg()
        self.jpub.publish(msg)
        with self.lock:
            self.joint_log.append((stamp.nanoseconds * 1e-9, q))

    def _cams(self):
        stamp = self.get_clock().now()
        self.count += 1
        for c, pub in self.cpub.items():
            if not self.cam_on[c]:
                continue
            value = (self.count * 7 + (0 if c == "cam_a" else 100)) % 256
            msg = Image(height=H * 2, width=W * 2, encoding="rgb8", step=W * 2 * 3)
            msg.header.stamp = stamp.to_msg()
            msg.data = bytes(np.full(H * 2 * W * 2 * 3, value, np.uint8))
            pub.publish(msg)
            with self.lock:
                self.frame_log[c].append((stamp.nanoseconds * 1e-9, value))

    def _joy(self):
        msg = Joy(axes=list(self.axes), buttons=list(self.buttons))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.joy.publish(msg)


@pytest.fixture
def rig(ros, tmp_path):
    made = []

    def make(**overrides):
        kw = dict(dataset_path=str(tmp_path / "demos"), joint_names=list(JOINTS), cameras=list(CAMS),
                  image_height=H, image_width=W, max_joint_speed=1.0, task="wave",
                  **{"joy.axes": [0, 1], "joy.joints": ["j1", "j3"], "joy.scales": [0.5, -0.5],
                     "joy.start_button": 0, "joy.save_button": 1, "joy.discard_button": 2})
        kw.update(overrides)
        arm = FakeArm(ros)
        rec = TeleopRecorder(context=ros, parameter_overrides=params(**kw))
        statuses = []
        rec.create_subscription(String, "~/status", lambda m: statuses.append(json.loads(m.data)), 10)
        spin = Spinner(ros, arm, rec)
        made.append((spin, arm, rec))
        return arm, rec, statuses

    yield make
    for spin, arm, rec in made:
        spin.stop()
        rec.destroy_node()
        arm.destroy_node()


def call(node, name):
    client = node.create_client(Trigger, name)
    assert client.wait_for_service(timeout_sec=5)
    fut = client.call_async(Trigger.Request())
    assert wait_for(fut.done, 10)
    return fut.result()


def idle(rec):
    return wait_for(lambda: rec.status.state == "idle", 30)


def test_records_what_was_published_and_discards_cleanly(rig, tmp_path):
    arm, rec, _ = rig()
    assert wait_for(lambda: rec.buffer.window(rec._now(), at=rec._now()).ready, 10)
    arm.axes[0], arm.axes[1] = 1.0, 0.5  # drive j1 and j3 while recording
    saved_windows = []
    for keep in (True, False, True):
        res = call(rec, "/teleop_recorder/start_episode")
        assert res.success, res.message
        time.sleep(1.2)
        res = call(rec, "/teleop_recorder/stop_episode" if keep else "/teleop_recorder/discard_episode")
        assert res.success, res.message
        assert idle(rec)
        saved_windows.append(keep)
    store = EpisodeStore.open(tmp_path / "demos")
    assert store.n_episodes == 2
    assert store.task == {"description": "wave"}
    with arm.lock:
        joint_log = list(arm.joint_log)
        frame_log = {c: list(v) for c, v in arm.frame_log.items()}
    stamps = np.array([t for t, _ in joint_log])
    qs = np.stack([q for _, q in joint_log])
    for e in range(2):
        ep = store.episode(e)
        n = len(ep["timestamp"])
        assert 8 <= n <= 14, n  # about 1.2 s at 10 Hz
        assert np.allclose(np.diff(ep["timestamp"]), 0.1, atol=0.03)
        for i, t in enumerate(ep["timestamp"]):
            for c in CAMS:  # the newest frame at or before t, resized (a flat image stays flat)
                value = [v for s, v in frame_log[c] if s <= t][-1]
                assert ep[c].shape[1:] == (H, W, 3)
                assert np.all(ep[c][i] == value), (c, i)
            j = np.searchsorted(stamps, t, side="right") - 1  # joints interpolated at t
            if j + 1 < len(stamps):
                w = (t - stamps[j]) / (stamps[j + 1] - stamps[j])
                expect = (1 - w) * qs[j] + w * qs[j + 1]
            else:
                expect = qs[j]
            assert np.allclose(ep["joint_pos"][i], expect, atol=1e-5)
        # The action of tick t is the target the arm should have reached at t: the one sent
        # at the tick before (stamped t' < t, reached at t' + 0.1), not the one sent at t.
        sent = arm.sent()
        for t, a in zip(ep["timestamp"], ep["action"]):
            k = max(i for i, (s, _) in enumerate(sent) if s + 0.02 <= t)  # in effect at t (latency 0.02 s)
            stamp, target = sent[k]
            assert t - stamp < 0.15
            # equal when the tick came a whole period after it; for timer jitter, the setpoint moves
            # 0.05 rad (0.5 rad/s x 0.1 s) in the 0.08 s from the switch to the target
            assert np.allclose(a, target, atol=0.05 / 0.08 * abs(stamp + 0.1 - t) + 1e-5), (t, a, target)
            assert not np.allclose(a, sent[k + 1][1], atol=1e-4), "the target sent at t is the next tick's action"
        assert ep["action"][-1, 0] > ep["action"][0, 0], "j1 moved while the stick was held"
    for arrival, msg in arm.targets:  # every command obeys the controller's rules
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        assert stamp > 0 and arrival - 0.1 < stamp <= arrival
        assert trajectory_violations(msg.joint_names, stamp, [0.1], [list(msg.points[0].positions)], [],
                                     JOINTS, arrival) == []


def test_start_refused_when_a_stream_is_stale_and_stale_ticks_are_dropped(rig, tmp_path):
    arm, rec, statuses = rig()
    assert wait_for(lambda: rec.buffer.window(rec._now(), at=rec._now()).ready, 10)
    arm.cam_on["cam_b"] = False
    time.sleep(0.5)
    res = call(rec, "/teleop_recorder/start_episode")
    assert not res.success and "cam_b" in res.message and "stale" in res.message
    arm.cam_on["cam_b"] = True
    assert wait_for(lambda: call(rec, "/teleop_recorder/start_episode").success, 5)
    time.sleep(0.5)
    arm.cam_on["cam_b"] = False
    time.sleep(0.8)
    arm.cam_on["cam_b"] = True
    time.sleep(0.5)
    assert call(rec, "/teleop_recorder/stop_episode").success
    assert idle(rec)
    assert rec.status.dropped >= 3 and "cam_b" in rec.status.last_drop
    ep = EpisodeStore.open(tmp_path / "demos").episode(0)
    assert len(ep["timestamp"]) >= 5  # the fresh ticks before and after were stored
    assert any(s["dropped"] >= 3 for s in statuses)


def test_joy_buttons_control_episodes(rig, tmp_path):
    arm, rec, _ = rig()
    assert wait_for(lambda: rec.buffer.window(rec._now(), at=rec._now()).ready, 10)
    arm.buttons[0] = 1  # start
    assert wait_for(lambda: rec.status.state == "recording", 5)
    arm.buttons[0] = 0
    time.sleep(0.6)
    arm.buttons[1] = 1  # save
    assert wait_for(lambda: rec.status.saved == 1, 10)
    arm.buttons[1] = 0
    time.sleep(0.2)
    arm.buttons[0] = 1
    assert wait_for(lambda: rec.status.state == "recording", 5)
    arm.buttons[0] = 0
    time.sleep(0.3)
    arm.buttons[2] = 1  # discard
    assert wait_for(lambda: rec.status.discarded == 1, 10)
    assert EpisodeStore.open(tmp_path / "demos").n_episodes == 1


def test_leader_arm_drives_the_follower(rig):
    arm, rec, _ = rig(device="leader", **{"leader.joint_names": ["l1", "l2", "l3"], "leader.offsets": [0.0, 0.1, 0.0],
                                          "leader.scales": [1.0, 1.0, -1.0]})
    pub = arm.create_publisher(JointState, "/leader/joint_states", qos_profile_sensor_data)
    arm.create_timer(0.02, lambda: pub.publish(JointState(name=["l3", "l2", "l1"], position=[0.2, 0.1, 0.3])))
    # Follower targets approach (0.3, 0.2, -0.2) at no more than 1 rad/s.
    assert wait_for(lambda: np.allclose(arm.q, [0.3, 0.2, -0.2], atol=1e-6), 10)
    with arm.lock:
        qs = [np.array(m.points[0].positions) for _, m in arm.targets]
    assert max(np.max(np.abs(np.diff(np.stack(qs), axis=0)), axis=1)) <= 0.1 + 1e-9


def test_bad_parameters_are_clear(ros, tmp_path):
    with pytest.raises(ValueError, match="dataset_path is empty"):
        TeleopRecorder(context=ros, parameter_overrides=params(joint_names=list(JOINTS)))
    with pytest.raises(ValueError, match="joint_names repeat"):
        TeleopRecorder(context=ros, parameter_overrides=params(dataset_path=str(tmp_path / "d"),
                                                               joint_names=["a", "a"]))
    with pytest.raises(ValueError, match=r"states.<key>.poses .* \['obj'\]"):
        TeleopRecorder(context=ros, parameter_overrides=params(dataset_path=str(tmp_path / "d"),
                                                               joint_names=list(JOINTS), states=["obj"]))
    EpisodeStore.create(tmp_path / "other", ["x", "y"], {}, 0.1).close()
    with pytest.raises(Exception, match="joint"):
        TeleopRecorder(context=ros, parameter_overrides=params(dataset_path=str(tmp_path / "other"),
                                                               joint_names=list(JOINTS)))


RECORDER_SCRIPT = """
import sys
from dp_ros.nodes.teleop_recorder import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_mid_episode_keeps_earlier_episodes(ros, tmp_path):
    """The recorder as its own process, killed with SIGKILL while recording episode 3."""
    arm = FakeArm(ros)
    spin = Spinner(ros, arm)
    path = tmp_path / "demos"
    args = ["--ros-args", "-p", f"dataset_path:={path}", "-p", "joint_names:=[j1,j2,j3]",
            "-p", "cameras:=[cam_a,cam_b]", "-p", f"image_height:={H}", "-p", f"image_width:={W}"]
    proc = subprocess.Popen([sys.executable, "-c", RECORDER_SCRIPT, *args], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = arm.create_client(Trigger, "/teleop_recorder/start_episode")
        assert client.wait_for_service(timeout_sec=30)

        def trigger(name):
            c = arm.create_client(Trigger, f"/teleop_recorder/{name}")
            assert c.wait_for_service(timeout_sec=10)
            fut = c.call_async(Trigger.Request())
            assert wait_for(fut.done, 10)
            return fut.result()

        for _ in range(2):
            assert wait_for(lambda: trigger("start_episode").success, 10)
            time.sleep(0.8)
            assert trigger("stop_episode").success
            time.sleep(1.5)  # saving
        assert wait_for(lambda: trigger("start_episode").success, 10)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        spin.stop()
        arm.destroy_node()
    store = EpisodeStore.open(path)
    assert store.n_episodes == 2
    for e in range(2):
        ep = store.episode(e)
        assert len(ep["timestamp"]) >= 5 and ep["cam_a"].shape[1:] == (H, W, 3)
    writable = EpisodeStore.open(path, writable=True)
    w = writable.begin_episode()
    w.add(1.0, np.zeros(3), np.zeros(3), {c: np.zeros((H, W, 3), np.uint8) for c in CAMS})
    assert w.commit() == 2


def test_teleop_targets_go_through_the_safety_filter(rig):
    """Issue 14.3: the recorder's commands are filtered like the policy's. The arm is at 0
    and j1's limits are [0.5, 1]: the targets move j1 inside at the speed limit (1 rad/s)
    instead of jumping to 0.5 at once."""
    arm, rec, _ = rig(joint_lower_limits=[0.5, -1.0, -1.0], joint_upper_limits=[1.0, 1.0, 1.0])
    assert wait_for(lambda: len(arm.sent()) >= 8, 10)
    sent = arm.sent()
    stamps = np.array([s for s, _ in sent])
    q = np.stack([t for _, t in sent])
    # The first command starts where the arm is (0) when the controller switches, 0.02 s after
    # its stamp, and reaches its point at stamp + 0.1; each next one from the previous target.
    assert abs(q[0, 0]) <= 1.0 * (0.1 - 0.02) + 1e-9
    assert np.all(np.abs(np.diff(q[:, 0])) <= 1.0 * np.diff(stamps) + 1e-6)
    assert q[-1, 0] == pytest.approx(0.5) and np.all(q[:, 0] <= 0.5 + 1e-9)
