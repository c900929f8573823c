"""In-process ROS 2 test harness: a spinning executor, fake sensors, recorders.

Each test gets its own rclpy context (conftest.py gives each pytest process its own
ROS_DOMAIN_ID), so nodes from different tests never meet.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from std_msgs.msg import Header
from sensor_msgs.msg import CompressedImage, Image, JointState

from dp_ros.model import (
    CameraConfig, LowdimConfig, ObsConfig, PolicyConfig, UNetConfig, VisionConfig, build_policy, save_checkpoint,
)
from dp_ros.model.presets import placeholder_normalizer

JOINTS = ("shoulder", "elbow", "wrist")
CAMERAS = ("camera_0", "camera_1")
IMG_H, IMG_W = 48, 64


def make_checkpoint(path: Path, horizon: int = 8, n_action_steps: int = 4) -> Path:
    cfg = PolicyConfig(
        joint_names=JOINTS,
        dt=0.1,
        obs=ObsConfig(
            cameras=tuple(CameraConfig(c, IMG_H, IMG_W, 40, 56) for c in CAMERAS),
            lowdim=(LowdimConfig("joint_pos", len(JOINTS)),),
        ),
        n_obs_steps=2,
        horizon=horizon,
        n_action_steps=n_action_steps,
        vision=VisionConfig(num_keypoints=8, feature_dim=16),
        unet=UNetConfig(down_dims=(16, 32), step_embed_dim=16),
    ).validate()
    # Joint targets within +-0.5 rad, so a random-weight policy stays near the arm.
    return save_checkpoint(build_policy(cfg, placeholder_normalizer(cfg, -0.5, 0.5)), path)


class Spinner:
    """A single-threaded executor spinning the given nodes in a background thread
    (the policy node runs inference in its own thread, as in production)."""

    def __init__(self, context, *nodes):
        self.executor = SingleThreadedExecutor(context=context)
        for n in nodes:
            self.executor.add_node(n)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def add(self, node):
        self.executor.add_node(node)

    def stop(self):
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=5.0)


def image_msg(stamp, h=IMG_H, w=IMG_W, encoding="rgb8", value=100) -> Image:
    msg = Image()
    msg.header.stamp = stamp
    msg.height, msg.width, msg.encoding = h, w, encoding
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4}.get(encoding, 3)
    msg.step = w * channels
    msg.data = bytes(np.full(h * w * channels, value, np.uint8))
    return msg


class FakeSensors(Node):
    """Cameras and joint states at fixed rates, stamped with the ROS clock."""

    def __init__(self, context, camera_hz=30.0, joint_hz=250.0, compressed=()):
        super().__init__("fake_sensors", context=context)
        self.image_override = {}  # camera -> callable(stamp) -> Image
        self.cam_pubs = {}
        for c in CAMERAS:
            if c in compressed:
                self.cam_pubs[c] = self.create_publisher(CompressedImage, f"/{c}/image_raw/compressed",
                                                         qos_profile_sensor_data)
                import cv2

                ok, buf = cv2.imencode(".jpg", np.full((IMG_H, IMG_W, 3), 100, np.uint8))
                self.image_override[c] = lambda stamp, data=buf.tobytes(): CompressedImage(
                    header=Header(stamp=stamp), format="jpeg", data=data)
            else:
                self.cam_pubs[c] = self.create_publisher(Image, f"/{c}/image_raw", qos_profile_sensor_data)
        self.joint_pub = self.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
        self.active = {c: True for c in CAMERAS}
        self.joints_active = True
        self.position = np.zeros(len(JOINTS))
        self.joint_override = None  # callable(stamp) -> JointState
        self.create_timer(1.0 / camera_hz, self._cams)
        self.create_timer(1.0 / joint_hz, self._joints)

    def _cams(self):
        stamp = self.get_clock().now().to_msg()
        for c, pub in self.cam_pubs.items():
            if self.active[c]:
                pub.publish(self.image_override[c](stamp) if c in self.image_override else image_msg(stamp))

    def _joints(self):
        if not self.joints_active:
            return
        stamp = self.get_clock().now().to_msg()
        if self.joint_override is not None:
            self.joint_pub.publish(self.joint_override(stamp))
            return
        msg = JointState()
        msg.header.stamp = stamp
        # An extra joint the policy must ignore, and the policy's joints out of order.
        msg.name = ["gripper", *reversed(JOINTS)]
        msg.position = [0.7, *reversed(self.position.tolist())]
        self.joint_pub.publish(msg)


class Recorder(Node):
    """Keeps every message of the given topics with its arrival time (ROS clock)."""

    def __init__(self, context, topics: dict, qos=10):
        super().__init__("recorder", context=context)
        self.msgs = {name: [] for name in topics}
        self._lock = threading.Lock()
        for name, (msg_type, topic) in topics.items():
            self.create_subscription(msg_type, topic, lambda m, n=name: self._keep(n, m), qos)

    def _keep(self, name, msg):
        with self._lock:
            self.msgs[name].append((self.get_clock().now().nanoseconds * 1e-9, msg))

    def get(self, name):
        with self._lock:
            return list(self.msgs[name])

    def clear(self):
        with self._lock:
            for v in self.msgs.values():
                v.clear()


def wait_for(predicate, timeout=10.0, period=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(period)
    return predicate()


def params(**kw):
    return [Parameter(k, value=v) for k, v in kw.items()]
