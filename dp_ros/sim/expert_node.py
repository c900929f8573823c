"""The scripted expert: records demonstrations in the simulator through the real recorder.

For each episode: reset the scene (``/sim_arm/reset``), hold the leader at the arm's
position, start an episode on the recorder, publish leader-arm joint states along
``plan_reach`` (either target, chosen at random), and once the chosen target is
touched and the plan has ended, stop (save) the episode; an episode that does not
succeed within its timeout is discarded.

``dp_ros sim record --dataset D --episodes N`` runs the simulator, the recorder (leader
mode) and this expert in one process, in lockstep simulated time (``sim.lockstep``;
``--realtime`` for the wall clock): the same seed records the same demonstrations.

With ``--device cartesian`` the recorder runs its Cartesian teleop (differential IK on
the URDF ``sim_arm`` publishes, translation only: the arm has four joints) and the
expert pushes a simulated 3D mouse: ``geometry_msgs/Twist`` deflections on
``/spacenav/twist`` toward tip waypoints above and onto the chosen target
(``plan_cartesian``), the tip read from ``/joint_states`` through MuJoCo's kinematics.
"""
from __future__ import annotations

import argparse
import json
import threading

import numpy as np
from geometry_msgs.msg import Twist
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from dp_ros.console import add_console_arguments, emit_json, quiet_console
from dp_ros.sim.expert import deflection_for, plan_cartesian, plan_reach, twist_toward
from dp_ros.sim.scene import JOINTS, SimArm


# The recorder's Cartesian settings for the simulated arm (``--device cartesian``).
CARTESIAN_SCALE = 0.15  # m/s at full deflection
CARTESIAN_DEADZONE = 0.1
CARTESIAN_PARAMETERS = {
    "device": "cartesian", "cartesian.input": "twist", "cartesian.twist_topic": "/spacenav/twist",
    "cartesian.tip_frame": "tip", "cartesian.enabled_axes": ["x", "y", "z"], "cartesian.frame": "base",
    "cartesian.scales": [CARTESIAN_SCALE] * 3 + [0.5] * 3, "cartesian.deadzone": CARTESIAN_DEADZONE,
}


class ExpertNode(Node):
    def __init__(self, seed: int = 0, speed: float = 0.6, use_sim_time: bool = False, device: str = "leader",
                 **kwargs):
        super().__init__("sim_expert", parameter_overrides=[Parameter("use_sim_time", value=use_sim_time)],
                         **kwargs)
        self.clock = None  # sim.lockstep.Lockstep or RealTime, set once every node exists
        self.rng = np.random.default_rng(seed)
        self.speed = speed
        self.kinematics = SimArm(seed=seed)  # for solve_ik only; never rendered
        self._lock = threading.Lock()
        self._q: np.ndarray | None = None
        self._task: dict | None = None
        self.device = device
        self._leader = self.create_publisher(JointState, "/leader/joint_states", qos_profile_sensor_data)
        self._twist = self.create_publisher(Twist, "/spacenav/twist", qos_profile_sensor_data)
        self.create_subscription(JointState, "/joint_states", self._on_joints, qos_profile_sensor_data)
        self.create_subscription(String, "/sim_arm/task", self._on_task, 10)
        self._triggers = {n: self.create_client(Trigger, f) for n, f in [
            ("reset", "/sim_arm/reset"), ("start", "/teleop_recorder/start_episode"),
            ("stop", "/teleop_recorder/stop_episode"), ("discard", "/teleop_recorder/discard_episode")]}

    def _on_joints(self, msg: JointState) -> None:
        if list(msg.name) == list(JOINTS):
            with self._lock:
                self._q = np.array(msg.position)

    def _on_task(self, msg: String) -> None:
        with self._lock:
            self._task = json.loads(msg.data)

    def _call(self, name: str, timeout: float = 10.0) -> Trigger.Response:
        return self.clock.call(self._triggers[name], Trigger.Request(), timeout)

    def _wait_for_joints(self, timeout: float = 10.0) -> np.ndarray:
        end = self.clock.now() + timeout
        while self.clock.now() < end:
            with self._lock:
                if self._q is not None:
                    return self._q.copy()
            self.clock.sleep(0.02)
        raise RuntimeError("no /joint_states from the simulator")

    def _publish_leader(self, q: np.ndarray) -> None:
        msg = JointState(name=list(JOINTS), position=[float(x) for x in q])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._leader.publish(msg)

    def _publish_twist(self, deflection: np.ndarray) -> None:
        msg = Twist()
        msg.linear.x, msg.linear.y, msg.linear.z = (float(x) for x in deflection)
        self._twist.publish(msg)

    def _hold(self, q: np.ndarray, seconds: float) -> None:
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            if self.device == "cartesian":
                self._publish_twist(np.zeros(3))
            else:
                self._publish_leader(q)
            self.clock.sleep(0.02)

    def record(self, episodes: int, timeout: float = 15.0) -> list[dict]:
        """Record ``episodes`` successful demonstrations; returns one summary per attempt."""
        summary = []
        while sum(s["saved"] for s in summary) < episodes:
            targets = np.array(json.loads(self._call("reset").message)["targets"])
            self.clock.sleep(0.3)  # the reset arm's state reaches the subscribers
            q0 = self._wait_for_joints()
            self._hold(q0, 0.5)  # the leader starts where the arm is: no jump
            deadline = self.clock.now() + 5.0
            while not (res := self._call("start")).success:
                if self.clock.now() > deadline:
                    raise RuntimeError(f"the recorder refused to start: {res.message}")
                self._hold(q0, 0.2)
            t0 = self.clock.now()
            if self.device == "cartesian":
                plan, success = self._drive_cartesian(targets, t0, timeout)
            else:
                plan, success = self._drive_leader(q0, targets, t0, timeout)
            self._call("stop" if success else "discard")
            summary.append({"goal": plan.goal, "saved": success, "seconds": round(self.clock.now() - t0, 2)})
            self.get_logger().info(f"episode {len(summary)}: goal {'left' if plan.goal == 0 else 'right'}, "
                                   f"{'saved' if success else 'discarded (no success)'}")
            self.clock.sleep(1.0)  # let the recorder save before the next reset
        return summary

    def _drive_leader(self, q0: np.ndarray, targets: np.ndarray, t0: float, timeout: float):
        plan = plan_reach(q0, targets, self.kinematics.solve_ik, self.rng, speed=self.speed)
        while True:
            t = self.clock.now() - t0
            self._publish_leader(plan.at(t))
            if t > plan.duration and self._succeeded(plan.goal):
                return plan, True
            if t > timeout:
                return plan, False
            self.clock.sleep(0.02)

    def _drive_cartesian(self, targets: np.ndarray, t0: float, timeout: float):
        plan = plan_cartesian(targets, self.rng)
        k, still_since = 0, None
        while True:
            t = self.clock.now() - t0
            with self._lock:
                q = self._q.copy()
            deflection = np.zeros(3)
            if k < len(plan.waypoints):
                velocity, reached = twist_toward(self.kinematics.tip_at(q), plan.waypoints[k], plan.speed)
                if reached:
                    k += 1
                else:
                    deflection = deflection_for(velocity, CARTESIAN_SCALE, CARTESIAN_DEADZONE)
            elif still_since is None:
                still_since = t
            self._publish_twist(deflection)
            if still_since is not None and t - still_since > plan.dwell and self._succeeded(plan.goal):
                return plan, True
            if t > timeout:
                return plan, False
            self.clock.sleep(0.02)

    def _succeeded(self, goal: int) -> bool:
        with self._lock:
            task = self._task
        return bool(task and task["success"] and task["goal"] == goal)

    def destroy_node(self):
        self.kinematics.close()
        return super().destroy_node()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset directory (created or appended to)")
    p.add_argument("--episodes", type=int, default=10, help="successful demonstrations to record")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", default="96x96", help="camera and stored image size, HxW")
    p.add_argument("--no-images", action="store_true",
                   help="record no camera (the simulator renders none): a dataset for the low-dim policy only")
    p.add_argument("--device", choices=("leader", "cartesian"), default="leader",
                   help="the recorder's teleop: leader (joint targets) or cartesian (a simulated 3D mouse "
                        "through differential IK on the arm's URDF)")
    p.add_argument("--realtime", action="store_true", help="run on the wall clock instead of lockstep time")
    p.add_argument("--json", default=None, help="write a summary per attempt as JSON to this file ('-': stdout)")
    add_console_arguments(p)


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise SystemExit("dp_ros sim record: --episodes must be >= 1")
    try:
        h, w = (int(x) for x in args.image_size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"dp_ros sim record: --image-size {args.image_size!r}: expected HxW, e.g. 96x96") from None
    with quiet_console(args, "sim_record"):
        summary = _record(args, h, w)
    saved = [s for s in summary if s["saved"]]
    left = sum(1 for s in saved if s["goal"] == 0)
    print(f"recorded {len(saved)} demonstrations into {args.dataset} ({left} left, {len(saved) - left} right; "
          f"{len(summary) - len(saved)} discarded)")
    emit_json(args.json, "sim_record", summary)
    return 0


def _record(args: argparse.Namespace, h: int, w: int) -> list[dict]:
    from dp_ros.nodes.common import InProcessNodes
    from dp_ros.nodes.teleop_recorder import TeleopRecorder
    from dp_ros.paths import package_file
    from dp_ros.sim.lockstep import node_options, start_clock
    from dp_ros.sim.sim_node import SimArmNode

    lockstep = not args.realtime
    # The simulator's and the recorder's parameters come from config/sim.yaml, as with
    # ros2 launch dp_ros sim.launch.py mode:=record; the command line overrides a few.
    size = [Parameter("image_height", value=h), Parameter("image_width", value=w)]
    with InProcessNodes([package_file("config", "sim.yaml")]) as ros:
        options = node_options(lockstep)
        sim = ros.add(SimArmNode(parameter_overrides=[
            Parameter("seed", value=args.seed), Parameter("lockstep", value=lockstep), *size,
            *([Parameter("camera_rate", value=0.0)] if args.no_images else [])], **options))
        device = getattr(args, "device", "leader")
        cartesian = [Parameter(k, value=v) for k, v in CARTESIAN_PARAMETERS.items()] if device == "cartesian" else []
        ros.add(TeleopRecorder(parameter_overrides=[
            Parameter("dataset_path", value=args.dataset), Parameter("use_sim_time", value=lockstep), *size,
            *([Parameter("cameras", value=[""])] if args.no_images else []), *cartesian], **options))
        expert = ros.add(ExpertNode(seed=args.seed, use_sim_time=lockstep, device=device, **options))
        expert.clock = start_clock(ros.nodes, sim, lockstep)
        try:
            return expert.record(args.episodes)
        finally:
            expert.clock.close()
