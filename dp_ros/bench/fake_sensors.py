"""A separate process that publishes cameras and joint states at fixed rates.

    python -m dp_ros.bench.fake_sensors --cameras camera_0,camera_1 --width 640 --height 480 \\
        --camera-hz 30 --joints joint_1,...,joint_7 --joint-hz 500 --duration 60

Images are rgb8 noise generated once (only the stamp changes); joints move on slow
sines. On exit (SIGINT or --duration) it prints one JSON line with what it sent.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np


def use_large_data_profile() -> Path:
    """Point Fast DDS at config/fastdds_large_data.xml (source tree, else the installed
    share directory) for this process and the processes it starts; returns the path.
    Fast DDS reads it when rclpy creates its participant, so call this before rclpy.init."""
    from dp_ros.paths import package_file

    profile = package_file("config", "fastdds_large_data.xml")
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    return profile


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cameras", default="camera_0,camera_1")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--camera-hz", type=float, default=30.0)
    p.add_argument("--joints", default=",".join(f"joint_{i + 1}" for i in range(7)))
    p.add_argument("--joint-hz", type=float, default=500.0)
    p.add_argument("--duration", type=float, default=0.0, help="seconds; 0 runs until SIGINT")
    p.add_argument("--reliable", action="store_true",
                   help="publish images with reliable QoS (as most camera drivers do) instead of best effort")
    args = p.parse_args(argv)

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState

    rclpy.init()
    node = Node("fake_sensors")
    cams = [c for c in args.cameras.split(",") if c]
    joints = [j for j in args.joints.split(",") if j]
    image_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if args.reliable else qos_profile_sensor_data
    pubs = {c: node.create_publisher(Image, f"/{c}/image_raw", image_qos) for c in cams}
    jpub = node.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
    rng = np.random.default_rng(0)
    frames = {}
    for c in cams:
        m = Image(height=args.height, width=args.width, encoding="rgb8", step=args.width * 3)
        m.data = rng.integers(0, 256, args.height * args.width * 3, dtype=np.uint8).tobytes()
        frames[c] = m
    sent = {c: 0 for c in cams} | {"joint_states": 0}
    t0 = time.monotonic()

    def publish_cameras():
        stamp = node.get_clock().now().to_msg()
        for c, m in frames.items():
            m.header.stamp = stamp
            pubs[c].publish(m)
            sent[c] += 1

    js = JointState(name=joints)

    def publish_joints():
        now = node.get_clock().now()
        t = time.monotonic() - t0
        js.header.stamp = now.to_msg()
        js.position = [0.3 * math.sin(0.5 * t + i) for i in range(len(joints))]
        jpub.publish(js)
        sent["joint_states"] += 1

    if cams:
        node.create_timer(1.0 / args.camera_hz, publish_cameras)
    node.create_timer(1.0 / args.joint_hz, publish_joints)
    if args.duration > 0:
        node.create_timer(args.duration, lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    elapsed = time.monotonic() - t0
    print(json.dumps({"sent": sent, "seconds": round(elapsed, 3)}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
