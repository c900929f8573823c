"""sim_arm: the simulated arm as a ROS 2 node, in real time.

- subscribes ``/joint_trajectory_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory),
  accepted or rejected by the rules of ros2_controllers' joint_trajectory_controller
  (``sim.controller``); rejections are logged with the reason;
- publishes ``/joint_states`` (default 200 Hz) and ``/<camera>/image_raw`` (rgb8,
  default 30 Hz), stamped with the node's clock when the state was taken;
- publishes ``/targets`` (geometry_msgs/PoseArray: the two target positions, left then
  right; default 20 Hz), the state key of the low-dimensional policy variant;
- publishes ``~/success`` (std_msgs/Bool) and ``~/task`` (std_msgs/String, JSON: success,
  goal 0 = left / 1 = right / -1, tip distances, target positions) at 10 Hz;
- publishes ``/robot_description`` (std_msgs/String, transient local): the arm's URDF
  (``sim.arm_description``), as robot_state_publisher does on a real arm;
- service ``~/reset`` (std_srvs/Trigger): the arm back home, the targets at a new
  random mirrored position.

Two time modes (parameter ``lockstep``):

- real time (default, ``sim.launch.py``): timers on the wall clock drive everything;
  physics runs on simulation time offset to the node's clock, so trajectory stamps
  and message stamps share one time base;
- lockstep: the node owns time. It publishes ``/clock`` (rosgraph_msgs/Clock; the
  other nodes run with ``use_sim_time``) and advances only when ``sim.lockstep.Lockstep``
  calls ``advance``, once every participant is done with the current instant; each
  stream is published at the first instant at or after it is due.
"""
from __future__ import annotations

import json
import threading

import numpy as np
from rclpy.node import Node
from geometry_msgs.msg import Pose, PoseArray
from rosgraph_msgs.msg import Clock
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from dp_ros.nodes.common import declare_read_only, sec_to_time, spin_node, stamp_to_sec
from dp_ros.sim.arm_description import sim_arm_urdf
from dp_ros.sim.scene import JOINTS, TIMESTEP, SimArm

NODE_NAME = "sim_arm"
LOCKSTEP_EPOCH = 100.0  # lockstep: ROS time at simulation time 0 (time 0 means "unset" to ROS)


class SimArmNode(Node):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)

        def p(*args, **kw):
            return declare_read_only(self, *args, **kw)

        joint_hz = p("joint_state_rate", 200.0, "Hz of /joint_states", lo=1.0, hi=1000.0)
        camera_hz = p("camera_rate", 30.0, "Hz of camera images (0: no camera)", lo=0.0, hi=120.0)
        targets_hz = p("targets_rate", 20.0, "Hz of /targets (geometry_msgs/PoseArray)", lo=1.0, hi=1000.0)
        h = p("image_height", 96, "camera image height", lo=16, hi=1024, integer=True)
        w = p("image_width", 96, "camera image width", lo=16, hi=1024, integer=True)
        self.camera = p("camera_name", "camera", "camera name: images on /<name>/image_raw")
        seed = p("seed", 0, "seed of the target positions", integer=True, lo=0, hi=2 ** 31 - 1)
        traj_topic = p("trajectory_topic", "/joint_trajectory_controller/joint_trajectory",
                       "the emulated controller's topic")
        self.lockstep = p("lockstep", False, "own time: publish /clock and advance only when the lockstep "
                          "driver says every participant is done (dp_ros sim eval, the tests); else real time")
        step = p("lockstep_step", 0.01, "lockstep: seconds between instants (whole physics steps); each stream "
                 "is published at the first instant at or after it is due", lo=TIMESTEP, hi=0.05)
        self.instant = max(1, round(step / TIMESTEP)) * TIMESTEP
        self.sim = SimArm(image_size=(h, w), seed=seed)
        self._lock = threading.Lock()
        # node time = sim time + offset
        self._offset = LOCKSTEP_EPOCH if self.lockstep else self._now() - self.sim.time
        self._periods = {"joints": 1.0 / joint_hz, "targets": 1.0 / targets_hz, "task": 0.1}
        if camera_hz > 0:
            self._periods["camera"] = 1.0 / camera_hz
        self._due = {k: 0.0 for k in self._periods}  # lockstep: the next sim time each stream is due
        self.trajectories: list[tuple[float, object]] = []  # (sim time, Command) accepted, while recording
        self.record_trajectories = self.lockstep  # in lockstep always; an evaluator in real time sets it
        self._rng = np.random.default_rng(seed)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._description_pub = self.create_publisher(String, "/robot_description", latched)
        self._description_pub.publish(String(data=sim_arm_urdf()))
        self._js_pub = self.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
        self._img_pub = self.create_publisher(Image, f"/{self.camera}/image_raw", qos_profile_sensor_data)
        self._success_pub = self.create_publisher(Bool, "~/success", 10)
        self._task_pub = self.create_publisher(String, "~/task", 10)
        self._targets_pub = self.create_publisher(PoseArray, "/targets", qos_profile_sensor_data)
        self.create_subscription(JointTrajectory, traj_topic, self._on_trajectory,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.create_service(Trigger, "~/reset", self._on_reset)
        if self.lockstep:
            self._clock_pub = self.create_publisher(Clock, "/clock", 10)
        else:
            self.create_timer(1.0 / joint_hz, self._on_physics)
            if camera_hz > 0:
                self.create_timer(1.0 / camera_hz, self._on_camera)
            self.create_timer(1.0 / targets_hz, self._on_targets)
            self.create_timer(0.1, self._on_task)
        self.get_logger().info(f"simulated arm {list(JOINTS)}: joint states at {joint_hz:g} Hz, "
                               f"/{self.camera}/image_raw {w}x{h} at {camera_hz:g} Hz, /targets at {targets_hz:g} Hz, "
                               f"trajectories on {traj_topic}; {'lockstep' if self.lockstep else 'real'} time")

    def _now(self) -> float:
        if self.lockstep:
            return self._offset + self.sim.time
        return self.get_clock().now().nanoseconds * 1e-9

    # ---- lockstep ----

    def time(self) -> float:
        """The node's time (ROS time of the simulation's present)."""
        with self._lock:
            return self._offset + self.sim.time

    def advance(self, seconds: float) -> float:
        """Lockstep: step the physics by ``seconds`` (whole physics steps, at least one);
        returns the new time. Nobody else sees it until ``publish_clock``."""
        steps = max(1, int(round(seconds / TIMESTEP)))
        with self._lock:
            self.sim.step(steps * TIMESTEP - 1e-9)
            return self._offset + self.sim.time

    def publish_clock(self) -> float:
        """Lockstep: publish the present time on /clock; returns it."""
        now = self.time()
        self._clock_pub.publish(Clock(clock=sec_to_time(now)))
        return now

    def publish_due(self) -> None:
        """Lockstep: publish every stream that is due at the present instant."""
        t = self.sim.time
        for name, publish in (("joints", self._on_physics), ("camera", self._on_camera),
                              ("targets", self._on_targets), ("task", self._on_task)):
            if name in self._due and t >= self._due[name] - 1e-9:
                publish()
                self._due[name] = max(self._due[name] + self._periods[name], t)

    def _advance(self) -> float:
        """Real time: step the physics up to the node's clock; returns that time."""
        now = self._now()
        if self.lockstep:
            return now
        with self._lock:
            lag = now - self._offset - self.sim.time
            if lag > 0.5:  # the process stalled: do not replay seconds of physics at once
                self._offset += lag - 0.5
                lag = 0.5
            if lag > 0:
                self.sim.step(lag)
        return now

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        now = self._advance()
        stamp = stamp_to_sec(msg.header.stamp)
        tfs = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
        with self._lock:
            errors = self.sim.controller.submit(
                list(msg.joint_names), 0.0 if stamp == 0.0 else stamp - self._offset, tfs,
                [list(p.positions) for p in msg.points], [list(p.velocities) for p in msg.points],
                now - self._offset)
        if errors:
            self.get_logger().warning(f"trajectory rejected: {'; '.join(errors)}", throttle_duration_sec=1.0)
        elif self.record_trajectories:
            with self._lock:
                self.trajectories.append((now - self._offset, self.sim.controller.last_command))

    def _on_physics(self) -> None:
        now = self._advance()
        with self._lock:
            q = self.sim.joint_positions()
            v = self.sim.data.qvel[:len(JOINTS)].copy()
        msg = JointState(name=list(JOINTS), position=q.tolist(), velocity=v.tolist())
        msg.header.stamp = sec_to_time(now)
        self._js_pub.publish(msg)

    def _on_camera(self) -> None:
        now = self._advance()
        with self._lock:
            img = self.sim.render()
        msg = Image(height=img.shape[0], width=img.shape[1], encoding="rgb8", step=img.shape[1] * 3)
        msg.header.stamp = sec_to_time(now)
        msg.header.frame_id = self.camera
        msg.data = img.tobytes()
        self._img_pub.publish(msg)

    def _on_targets(self) -> None:
        now = self._advance()
        with self._lock:
            targets = self.sim.target_positions()
        msg = PoseArray(poses=[Pose() for _ in targets])
        for pose, (x, y, z) in zip(msg.poses, targets):
            pose.position.x, pose.position.y, pose.position.z = float(x), float(y), float(z)
        msg.header.stamp = sec_to_time(now)
        msg.header.frame_id = "world"
        self._targets_pub.publish(msg)

    def _on_task(self) -> None:
        with self._lock:
            out = self.sim.outcome()
            targets = self.sim.targets()
        self._success_pub.publish(Bool(data=out.success))
        self._task_pub.publish(String(data=json.dumps({
            "success": out.success, "goal": out.goal, "distances": list(out.distances),
            "targets": targets.tolist()})))

    def destroy_node(self):
        sim = getattr(self, "sim", None)
        if sim is not None:
            sim.close()
        return super().destroy_node()

    def _on_reset(self, request, response):
        with self._lock:
            targets = self.sim.reset(seed=int(self._rng.integers(2 ** 31)))
            if not self.lockstep:
                self._offset = self._now() - self.sim.time
        response.success = True
        response.message = json.dumps({"targets": targets.tolist()})
        return response


def main(args=None) -> int:
    return spin_node(SimArmNode, NODE_NAME, args)


if __name__ == "__main__":
    raise SystemExit(main())
