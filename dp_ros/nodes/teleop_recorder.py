"""teleop_recorder: drive the arm with a teleop device and record demonstrations.

Every record tick t (period dt, default 0.1 s):

1. the teleop device (Joy axes or a leader arm) gives the joint target for t + dt,
   which goes through the safety filter (the same one as the policy node's commands:
   speed limited from where the controller will be when it switches) and is sent to
   the joint_trajectory_controller (one point, stamped t, reached at t + dt);
2. while an episode is recording, the observation at t (each camera's newest frame
   stamped at or before t, joint positions interpolated at t: the rule the policy node
   samples its window by) and the action of t are handed to a writer thread, which
   converts the frames to RGB at the storage size and stages them. The action of t is
   the joint target the arm should have reached at t, by the commands sent so far (the
   target sent at t - dt): docs/timing.md. The observation for tick t is sampled one
   tick later, so that messages stamped around t have arrived and the joints can be
   interpolated at t rather than held at the last message before it. A tick whose
   streams are stale is dropped and counted, never stored half; its absence shows in
   the stored tick stamps (training never bridges such a gap).

Episodes are committed atomically by ``dp_ros.dataset.store`` (stop = save); a crash
loses only the episode being recorded. Episode control: Joy buttons and the services
``~/start_episode``, ``~/stop_episode``, ``~/discard_episode`` (std_srvs/Trigger).
"""
from __future__ import annotations

import json
import math
import queue
import threading
from dataclasses import dataclass, field

import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from geometry_msgs.msg import PoseArray
from sensor_msgs.msg import CompressedImage, Image, JointState, Joy
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from dp_ros.core.command import Command, CommandLog, start_position
from dp_ros.core.obs_buffer import ObservationBuffer, StreamSpec
from dp_ros.core.safety import JointLimits, UnsafeChunk, filter_chunk, hold_command
from dp_ros.core.teleop import AxisMapping, JoyTeleop, LeaderTeleop
from dp_ros.dataset.store import DatasetError, EpisodeStore
from dp_ros.nodes.common import (
    AspectWarner, JointPicker, declare_read_only, image_msg_to_rgb, pose_positions, sec_to_duration, sec_to_time,
    spin_node, stamp_to_sec,
)

NODE_NAME = "teleop_recorder"
JOINTS = "joint_pos"
TRAJECTORY_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class _Status:
    state: str = "idle"  # idle | recording | saving
    episode: int = 0  # index the current (or next) episode gets
    frames: int = 0
    dropped: int = 0
    last_drop: str = ""
    saved: int = 0
    discarded: int = 0
    message: str = ""
    rejected: dict[str, int] = field(default_factory=dict)
    device: str = ""  # why the teleop device cannot move the arm (empty when it can)


class TeleopRecorder(Node):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        log = self.get_logger()
        def p(*args, **kw):
            return declare_read_only(self, *args, **kw)

        path = p("dataset_path", "", "dataset directory (zarr); created if missing, appended to if it matches")
        if not path:
            raise ValueError("parameter dataset_path is empty: set it to a dataset directory")
        self.joint_names = tuple(p("joint_names", [""], "the follower arm's joints, in the dataset's order"))
        if not all(self.joint_names):
            raise ValueError("parameter joint_names is required (the arm's joints, in order)")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"joint_names repeat: {list(self.joint_names)}")
        n = len(self.joint_names)
        self.dt = p("dt", 0.1, "record period in seconds (the policy's control period)", lo=0.005, hi=10.0)
        cameras = [c for c in p("cameras", [""], "camera names ([''] for none)") if c]
        height = p("image_height", 240, "stored image height in pixels", lo=16, hi=4096, integer=True)
        width = p("image_width", 320, "stored image width in pixels", lo=16, hi=4096, integer=True)
        state_keys = [k for k in p("states", [""], "state keys recorded besides joint_pos, each from a "
                                   "geometry_msgs/PoseArray topic ([''] for none)") if k]
        states = {k: 3 * p(f"states.{k}.poses", 0, f"state {k}: poses per message (3 values each)",
                           lo=0, hi=10000, integer=True) for k in state_keys}
        missing = [k for k, d in states.items() if d == 0]
        if missing:
            raise ValueError(f"set states.<key>.poses (poses per PoseArray message) for {missing}")
        task = p("task", "", "free-form task description, or a JSON object, stored with the dataset")
        device = p("device", "joy", "teleop device: joy, leader or cartesian")
        lower = np.array(p("joint_lower_limits", [-math.inf] * n, "lower limit per joint; -.inf for none"), float)
        upper = np.array(p("joint_upper_limits", [math.inf] * n, "upper limit per joint; .inf for none"), float)
        speed = p("max_joint_speed", 0.5, "rad/s per joint for teleop targets", lo=1e-6, hi=100.0)
        self.max_age = p("max_obs_age", 0.25, "seconds; an older stream makes a tick stale", lo=0.001, hi=10.0)
        joint_topic = p("joint_states_topic", "/joint_states", "the follower's sensor_msgs/JointState")
        traj_topic = p("trajectory_topic", "/joint_trajectory_controller/joint_trajectory",
                       "the controller's trajectory_msgs/JointTrajectory topic")
        self.tracking_tolerance = p("tracking_tolerance", 0.1, "rad (m); measured further than this from where "
                                    "the last command put the controller: start the next one from the measurement",
                                    lo=1e-4, hi=10.0)
        self.latency = p("execution_latency", 0.02, "seconds from publishing to the controller acting: the "
                         "controller is taken to switch to a new target then", lo=0.0, hi=1.0)
        if len(lower) != n or len(upper) != n:
            raise ValueError(f"joint_lower_limits and joint_upper_limits need {n} values each, one per joint in "
                             f"{list(self.joint_names)}; got {len(lower)} and {len(upper)}")
        self.limits = JointLimits(lower, upper, np.full(n, speed), self.joint_names)  # ValueError naming joints

        self.cartesian = None
        self._buttons: dict[str, int] = {}
        self._last_buttons: tuple[int, ...] = ()
        if device in ("joy", "cartesian"):
            self._buttons = {
                "start": p("joy.start_button", -1, "Joy button that starts an episode (-1: none)"),
                "save": p("joy.save_button", -1, "Joy button that stops and saves the episode (-1: none)"),
                "discard": p("joy.discard_button", -1, "Joy button that discards the episode (-1: none)"),
            }
            joy_topic = p("joy_topic", "/joy", "sensor_msgs/Joy input (axes and buttons)")
        if device == "cartesian":
            from dp_ros.nodes.cartesian_device import CartesianDevice

            self.cartesian = CartesianDevice(self, p, self.joint_names, self.limits, self._set_limits)
            self.teleop = self.cartesian.teleop
            if self.cartesian.input == "joy" or any(b >= 0 for b in (*self._buttons.values(),
                                                                      *self.cartesian.gripper_buttons.values())):
                self.create_subscription(Joy, joy_topic, self._on_joy, qos_profile_sensor_data)
        elif device == "joy":
            k = min(n, 6)  # default: the first axes drive the first joints, in order
            axes = p("joy.axes", list(range(k)), "Joy axis index per mapped joint")
            joints = p("joy.joints", list(self.joint_names[:k]), "joint driven by each axis in joy.axes")
            scales = p("joy.scales", [0.5] * k, "rad/s at full deflection for each axis (negative inverts)")
            if not len(axes) == len(joints) == len(scales):
                raise ValueError("joy.axes, joy.joints and joy.scales must have the same length")
            self.teleop = JoyTeleop(self.joint_names, [AxisMapping(a, j, s) for a, j, s in zip(axes, joints, scales)],
                                    self.limits, deadzone=p("joy.deadzone", 0.1, "axis deadzone", lo=0.0, hi=0.99),
                                    timeout=p("joy.timeout", 0.5, "seconds until silent axes count as released",
                                              lo=0.01, hi=10.0))
            self.create_subscription(Joy, joy_topic, self._on_joy, qos_profile_sensor_data)
        elif device == "leader":
            leader_names = [x for x in p("leader.joint_names", [""], "leader joint per follower joint; [''] = same names") if x]
            self.teleop = LeaderTeleop(self.joint_names, self.limits, leader_names or None,
                                       p("leader.offsets", [0.0] * n, "added to each leader position"),
                                       p("leader.scales", [1.0] * n, "multiplies each leader position"))
            self.create_subscription(JointState, p("leader_topic", "/leader/joint_states", "the leader's JointState"),
                                     self._on_leader, qos_profile_sensor_data)
        else:
            raise ValueError(f"device {device!r} must be 'joy', 'leader' or 'cartesian'")

        try:
            task_meta = json.loads(task) if task.strip().startswith("{") else {"description": task}
        except json.JSONDecodeError as exc:
            raise ValueError(f"parameter task looks like JSON but is not: {exc}") from None
        self.store = EpisodeStore.create(path, self.joint_names, {c: (height, width) for c in cameras}, self.dt,
                                         task=task_meta, states=states)
        self.cameras = cameras
        self.states = states
        self.size = (height, width)
        streams = [StreamSpec(c, self.max_age) for c in (*cameras, *states)]
        streams.append(StreamSpec(JOINTS, self.max_age, interpolate=True))
        self.buffer = ObservationBuffer(streams, n_obs_steps=1, dt=self.dt)
        self.status = _Status(episode=self.store.n_episodes)
        self._lock = threading.Lock()
        self._writer = None
        self._pending: float | None = None  # the tick whose observation is sampled at the next tick
        self._commands = CommandLog()  # what was sent: the action of a tick is the setpoint then
        self._jobs: queue.Queue = queue.Queue(maxsize=int(2.0 / self.dt) + 4)  # about 2 s of ticks
        self._aspect = AspectWarner(log)
        self._joints = JointPicker(self.joint_names)

        for cam in cameras:
            compressed = p(f"cameras.{cam}.compressed", False, f"camera {cam}: sensor_msgs/CompressedImage")
            topic = p(f"cameras.{cam}.topic", "", f"camera {cam}: topic; empty = /{cam}/image_raw[/compressed]")
            topic = topic or f"/{cam}/image_raw" + ("/compressed" if compressed else "")
            self.create_subscription(CompressedImage if compressed else Image, topic,
                                     lambda m, c=cam: self._push(c, m), qos_profile_sensor_data)
        state_topics = {}
        for key in states:
            topic = state_topics[key] = p(f"states.{key}.topic", "", f"state {key}: topic; empty = /{key}") or f"/{key}"
            self.create_subscription(PoseArray, topic, lambda m, k=key: self._on_state(k, m), qos_profile_sensor_data)
        self.create_subscription(JointState, joint_topic, self._on_joint_state, qos_profile_sensor_data)
        self._traj_pub = self.create_publisher(JointTrajectory, traj_topic, TRAJECTORY_QOS)
        self._status_pub = self.create_publisher(String, "~/status", 10)
        self.create_service(Trigger, "~/start_episode", lambda req, res: self._service(res, self.start_episode))
        self.create_service(Trigger, "~/stop_episode", lambda req, res: self._service(res, self.stop_episode))
        self.create_service(Trigger, "~/discard_episode", lambda req, res: self._service(res, self.discard_episode))
        self._worker = threading.Thread(target=self._work, name="recorder_writer", daemon=True)
        self._worker.start()
        self.create_timer(self.dt, self._tick)
        log.info(f"recording {list(self.joint_names)}, cameras {cameras} and states {state_topics} every {self.dt} s "
                 f"into {path} "
                 f"({self.store.n_episodes} episodes so far); teleop: {device}")

    # ---- helpers ----

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _reject(self, stream: str, reason: str) -> None:
        with self._lock:
            self.status.rejected[stream] = self.status.rejected.get(stream, 0) + 1
        self.get_logger().warning(f"message rejected: {reason}", throttle_duration_sec=2.0)

    # ---- inputs ----

    def _push(self, stream: str, msg, value=None) -> None:
        reason = self.buffer.push(stream, stamp_to_sec(msg.header.stamp), msg if value is None else value, self._now())
        if reason:
            self._reject(stream, reason)

    def _on_state(self, key: str, msg: PoseArray) -> None:
        values = pose_positions(msg)
        if values.size != self.states[key]:
            self._reject(key, f"{key}: {values.size // 3} poses; expected {self.states[key] // 3}")
        elif not np.all(np.isfinite(values)):
            self._reject(key, f"{key}: NaN or infinite position")
        else:
            self._push(key, msg, values)

    def _on_joint_state(self, msg: JointState) -> None:
        q, reason = self._joints.pick(msg.name, msg.position)
        if q is not None:
            reason = self.buffer.push(JOINTS, stamp_to_sec(msg.header.stamp), q, self._now())
        if reason:
            self._reject(JOINTS, reason)

    def _on_joy(self, msg: Joy) -> None:
        buttons, last = tuple(msg.buttons), self._last_buttons

        def pressed(index: int) -> bool:  # down now, up in the previous message
            return 0 <= index < len(buttons) and bool(buttons[index]) and not (index < len(last) and last[index])

        if self.cartesian is not None:
            reason = self.cartesian.on_joy(msg.axes, pressed, self._now())
        else:
            reason = self.teleop.set_axes(list(msg.axes), self._now())
        if reason:
            self._reject("joy", reason)
        for action, index in self._buttons.items():
            if pressed(index):
                ok, text = {"start": self.start_episode, "save": self.stop_episode,
                            "discard": self.discard_episode}[action]()
                if ok:
                    self.get_logger().info(f"joy {action}: {text}")
                else:
                    self.get_logger().warning(f"joy {action}: {text}")
        self._last_buttons = buttons

    def _set_limits(self, limits: JointLimits) -> None:
        """The limits every command is filtered with (the URDF's tighten them, device cartesian)."""
        self.limits = limits

    def _on_leader(self, msg: JointState) -> None:
        reason = self.teleop.set_leader(list(msg.name), list(msg.position))
        if reason:
            self._reject("leader", reason)

    # ---- episode control (services and Joy buttons) ----

    def _service(self, response, action):
        response.success, response.message = action()
        return response

    def start_episode(self) -> tuple[bool, str]:
        with self._lock:
            if self.status.state != "idle":
                return False, f"cannot start: an episode is {self.status.state}"
            win = self.buffer.window(self._now(), at=self._now())
            if not win.ready:
                return False, "cannot start: " + "; ".join(win.reasons)
            try:
                self._writer = self.store.begin_episode()
            except DatasetError as exc:
                return False, f"cannot start: {exc}"
            self.status.state, self.status.frames, self.status.dropped, self.status.last_drop = "recording", 0, 0, ""
            self._pending = None
            self.status.episode = self.store.n_episodes
            return True, f"recording episode {self.status.episode}"

    def stop_episode(self) -> tuple[bool, str]:
        return self._finish("commit")

    def discard_episode(self) -> tuple[bool, str]:
        return self._finish("discard")

    def _finish(self, what: str) -> tuple[bool, str]:
        with self._lock:
            if self.status.state != "recording":
                return False, f"no episode is recording (state: {self.status.state})"
            self.status.state = "saving" if what == "commit" else "discarding"
            frames = self.status.frames
        self._jobs.put((what, None))
        verb = "saving" if what == "commit" else "discarding"
        return True, f"{verb} episode {self.status.episode} (frames recorded so far: {frames})"

    # ---- the record tick ----

    def _tick(self) -> None:
        now = self._now()
        self._command_step(now)
        with self._lock:
            recording = self.status.state == "recording"
            pending, self._pending = self._pending, (now if recording else None)
        if pending is not None and recording:
            t = pending
            action = self._commands.at(t)  # the target the arm should have reached at t
            win = self.buffer.window(now, at=t)
            if not win.ready:
                self._drop("stale: " + "; ".join(win.reasons))
            elif action is None:
                self._drop("no command had been sent for the tick (no fresh joint state before it)")
            else:
                frames = {c: win.values[c][0] for c in self.cameras}
                states = {k: win.values[k][0] for k in self.states}
                try:
                    self._jobs.put_nowait(("frame", (t, win.values[JOINTS][0], action, frames, states)))
                except queue.Full:
                    self._drop("the writer is behind (disk too slow?)")
        self._publish_status()

    def _command_step(self, now: float) -> None:
        """Send the teleop target for now + dt, through the safety filter; nothing without a
        fresh joint state."""
        measured = self.buffer.motion(JOINTS, self.dt)
        if measured is None or now - measured[0] > self.max_age:
            return
        q = measured[1]
        if self.teleop.target is None:
            self.teleop.reset(q)
        target = self.teleop.step(now, self.dt)
        # No wind-up: the target never leads the measured position by more than two ticks of motion.
        lead = 2.0 * self.dt * self.limits.max_velocity
        target = np.clip(target, q - lead, q + lead)
        t_switch = now + self.latency
        start, note = start_position(self._commands.current, t_switch, measured, now, self.max_age,
                                     self.limits.max_velocity, self.tracking_tolerance)
        if note:
            self.get_logger().warning(note, throttle_duration_sec=2.0)
        try:
            safe = filter_chunk(np.array([now + self.dt]), target[None, :], t_switch, start, self.limits).positions
        except UnsafeChunk as exc:
            self.get_logger().error(f"teleop target refused: {exc}", throttle_duration_sec=2.0)
            return
        self.teleop.target = safe[0].copy()
        self._send(now, t_switch, start, safe)

    def _send(self, now: float, t_switch: float, start: np.ndarray, positions: np.ndarray) -> None:
        """One point, stamped now, reached at now + dt; remembered as the controller's command."""
        msg = JointTrajectory(joint_names=list(self.joint_names), points=[JointTrajectoryPoint(
            positions=[float(x) for x in positions[0]], time_from_start=sec_to_duration(self.dt))])
        msg.header.stamp = sec_to_time(now)
        self._traj_pub.publish(msg)
        self._commands.add(Command(t_switch, start, np.array([now + self.dt]), positions))

    def shutdown(self) -> None:
        """Stop: the episode being recorded is discarded (destroy_node), the arm holds."""
        now = self._now()
        t_switch = now + self.latency
        start, _ = start_position(self._commands.current, t_switch, self.buffer.motion(JOINTS, self.dt), now,
                                  self.max_age, self.limits.max_velocity, self.tracking_tolerance)
        if start is None:
            self.get_logger().info("stopping; no fresh joint state, so no hold command was sent")
            return
        self._send(now, t_switch, start, hold_command(t_switch, start, self.dt, self.limits).positions)
        self._traj_pub.wait_for_all_acked(Duration(seconds=1.0))
        self.get_logger().info("stopping: holding where the arm will be")

    def _drop(self, reason: str) -> None:
        with self._lock:
            self.status.dropped += 1
            self.status.last_drop = reason
        self.get_logger().warning(f"tick dropped: {reason}", throttle_duration_sec=2.0)

    def _publish_status(self) -> None:
        with self._lock:
            if self.cartesian is not None:
                self.status.device = self.cartesian.problem
            s = vars(self.status).copy()
        self._status_pub.publish(String(data=json.dumps(s)))

    # ---- the writer thread ----

    def _work(self) -> None:
        while True:
            kind, item = self._jobs.get()
            if kind == "stop":
                return
            try:
                if kind == "frame":
                    self._write_frame(*item)
                elif kind == "commit":
                    index = self._writer.commit()
                    with self._lock:
                        self.status.saved += 1
                        self.status.message = f"saved episode {index} ({self.status.frames} frames)"
                    self.get_logger().info(self.status.message)
                elif kind == "discard":
                    self._writer.discard()
                    with self._lock:
                        self.status.discarded += 1
                        self.status.message = f"discarded episode {self.status.episode}"
                    self.get_logger().info(self.status.message)
            except (DatasetError, OSError, ValueError) as exc:
                if kind == "frame":
                    self._drop(f"could not store the frame: {exc}")
                else:
                    with self._lock:
                        self.status.message = f"{kind} failed: {exc}"
                    self.get_logger().error(self.status.message)
                    if kind == "commit":
                        try:
                            self._writer.discard()
                        except Exception:  # the store already rolled back; nothing more to undo
                            pass
            finally:
                if kind in ("commit", "discard"):
                    with self._lock:
                        self._writer = None
                        self.status.state = "idle"
                        self.status.episode = self.store.n_episodes

    def _write_frame(self, t, joint_pos, action, frames, states) -> None:
        h, w = self.size
        images = {c: self._aspect.resize(c, image_msg_to_rgb(m), h, w) for c, m in frames.items()}
        with self._lock:
            writer = self._writer
            if writer is None or self.status.state not in ("recording", "saving", "discarding"):
                return
        writer.add(t, joint_pos, action, images, states)
        with self._lock:
            self.status.frames += 1

    def destroy_node(self):
        worker = getattr(self, "_worker", None)  # absent when the constructor failed
        if worker is not None and worker.is_alive():
            self._jobs.put(("stop", None))
            worker.join(timeout=30.0)
        store = getattr(self, "store", None)
        if store is not None:
            # An episode still recording at shutdown is discarded (with a warning), not saved:
            # an interrupted demonstration is not one to learn from.
            store.close()
        return super().destroy_node()


def main(args=None) -> int:
    return spin_node(TeleopRecorder, NODE_NAME, args)


if __name__ == "__main__":
    raise SystemExit(main())
