"""policy_node: cameras and /joint_states in, JointTrajectory chunks out.

A thin shell around ``dp_ros.runtime.loop.ChunkPlanner``: it declares parameters,
converts messages, and publishes what the planner decides. Sensor callbacks only
store messages (image decoding happens later, for the frames a chunk uses).

Inference runs in the node's own worker thread, not in an executor callback: the
executor (single-threaded) only ever runs the short sensor, service and diagnostics
callbacks, so a chunk in progress never delays them. (rclpy's MultiThreadedExecutor
was measured here at 100% CPU delivering 5 of 250 joint states per second with this
node, while the single-threaded executor delivered all of them at 24% CPU; see
docs/policy_node.md.)

Topics, services and parameters are documented in the README ("The policy node").
"""
from __future__ import annotations

import json
import math
import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from geometry_msgs.msg import PoseArray
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from dp_ros.core.chunking import TimedChunk
from dp_ros.core.safety import JointLimits
from dp_ros.core.trajectory_rules import trajectory_violations
from dp_ros.core.urdf import parse_joint_limits
from dp_ros.nodes.common import (
    AspectWarner, JointPicker, describe, image_msg_to_rgb, pose_positions, sec_to_duration, sec_to_time, spin_node,
    stamp_to_sec,
)
from dp_ros.nodes.policy_params import PolicyParameters
from dp_ros.paths import share_dir
from dp_ros.runtime.backends import check_against_reference, compile_option, load_runner, resolve_model_path
from dp_ros.runtime.chunk_log import ChunkLog
from dp_ros.runtime.loop import ChunkPlanner, StepResult, Tunables
from dp_ros.runtime.worker_clock import WorkerClock

NODE_NAME = "dp_policy"
TRAJECTORY_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
# Refusals after which the node holds rather than let the last chunk run on (waiting: the
# history is still filling; disabled and discarded: a hold has been sent or is not wanted).
# A late chunk is not one of them: the running chunk's bridge goes on (core.seams).
STOP_STATES = ("stale", "bad_input", "inference_failed", "over_budget", "unsafe", "bad_limits", "error")
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class PolicyNode(Node):
    def __init__(self, node_name: str = NODE_NAME, runner=None, **kwargs):
        """``runner``: run this instead of loading model_path (a loaded PolicyRunner, or
        the recorded actions of ``dp_ros sim replay``); it is not checked at start-up."""
        super().__init__(node_name, **kwargs)
        log = self.get_logger()

        # ---- the checkpoint and what it fixes (read-only) ----
        model_path = self.declare_parameter("model_path", "", describe(
            "checkpoint directory, or the name of one under the package's models/", read_only=True)).value
        backend = self.declare_parameter("backend", "auto", describe(
            "inference backend: auto, tensorrt, cuda_graph, onnxruntime or pytorch", read_only=True)).value
        device = self.declare_parameter("device", "auto", describe(
            "torch device: auto, cpu, cuda or cuda:N", read_only=True)).value
        compile_descriptor = describe(
            "cuda_graph backend: compile the networks with torch.compile before capture: auto (where Triton "
            "is installed), true or false", read_only=True)
        compile_descriptor.dynamic_typing = True  # YAML true/false and the string auto
        torch_compile = compile_option(self.declare_parameter("torch_compile", "auto", compile_descriptor).value)
        verify = self.declare_parameter("verify_backend", True, describe(
            "at start-up, run the backend and the PyTorch FP32 reference on one synthetic observation with the "
            "same noise, and refuse to start when they differ by more than verify_tolerance", read_only=True)).value
        verify_tolerance = self.declare_parameter("verify_tolerance", 0.02, describe(
            "largest start-up difference from the reference, as a fraction of each joint's range in the "
            "training data", read_only=True, lo=1e-6, hi=1.0)).value
        spacing = self.declare_parameter("timestep_spacing", "", describe(
            "DDIM timestep spacing: empty for the checkpoint's, capped, trailing or leading (docs/model.md)",
            read_only=True)).value
        self._check = "not run (verify_backend is false)"
        if runner is not None:
            verify, self._check = False, "not run (the runner was given)"
        else:
            if not model_path:
                raise ValueError("parameter model_path is empty: set it to a checkpoint directory")
            options = {} if torch_compile is None else {"compile": torch_compile}  # None: the backend's default
            runner = load_runner(resolve_model_path(model_path, share_dir()), backend, device,
                                 timestep_spacing=spacing or None, **options)
        self.runner = runner
        cfg = self.cfg = self.runner.config
        warm = self.runner.warm_up()
        log.info(f"loaded {self.runner.path} on {self.runner.backend_name}/{self.runner.device}: "
                 f"T_o={cfg.n_obs_steps} T_p={cfg.horizon} dt={cfg.dt} joints={list(cfg.joint_names)} "
                 f"cameras={[c.name for c in cfg.obs.cameras]}; warm-up inference {warm * 1e3:.0f} ms")
        if cfg.action_time_offset:
            log.info(f"the checkpoint's actions are reached {cfg.action_time_offset:g} s after the time they are "
                     "filed under (a policy imported from LeRobot): action_time_offset defaults to that")
        if verify:
            check = check_against_reference(self.runner, verify_tolerance)  # raises BackendMismatch
            self._check = ("the reference itself" if check is None else
                           f"max diff {check.max_diff:.2g} of the joint range (tolerance {check.tolerance:g})")
            if check is not None:
                log.info(f"backend {self.runner.backend_name} agrees with the PyTorch FP32 reference: {self._check}, "
                         f"checked in {check.seconds:.1f} s")
        for name, value, text in [
            ("n_obs_steps", cfg.n_obs_steps, "T_o, observation steps (from the checkpoint)"),
            ("horizon", cfg.horizon, "T_p, predicted actions per chunk (from the checkpoint)"),
            ("dt", cfg.dt, "control period in seconds (from the checkpoint)"),
            ("joint_names", list(cfg.joint_names), "joints, in the model's order (from the checkpoint)"),
            ("camera_names", [c.name for c in cfg.obs.cameras] or [""],
             "cameras (from the checkpoint; [''] when there are none)"),
        ]:
            got = self.declare_parameter(name, value, describe(text, read_only=True)).value
            if list(got) != list(value) if isinstance(value, list) else got != value:
                raise ValueError(f"parameter {name}={got!r} does not match the checkpoint's {value!r}; "
                                 "remove it from the parameters or use the matching checkpoint")

        # ---- tunable at run time (validated together in policy_params, read at every chunk) ----
        self.params = PolicyParameters(self, cfg, self.runner)
        prepared = self.declare_parameter("prepared_inference_steps", [cfg.noise.num_inference_steps], describe(
            "DDIM step counts to prepare at start-up (CUDA graphs captured) so num_inference_steps can switch "
            "between them while running; other values are refused on graph backends", read_only=True)).value
        for k in sorted({*prepared, int(self._param("num_inference_steps"))}):
            if not 1 <= k <= cfg.noise.num_train_steps:
                raise ValueError(f"prepared_inference_steps: {k} must be in 1..{cfg.noise.num_train_steps}")
            seconds = self.runner.prepare(k)
            if self.runner.needs_prepare:
                log.info(f"prepared {k} DDIM steps on {self.runner.backend_name} in {seconds:.1f} s")
        problem = self.params.problem()
        if problem:
            raise ValueError(problem)

        # ---- wiring (read-only) ----
        self._enabled = self.declare_parameter("enabled_on_start", False, describe(
            "publish trajectories from the start; otherwise wait for ~/enable", read_only=True)).value
        joint_topic = self.declare_parameter("joint_states_topic", "/joint_states", describe(
            "sensor_msgs/JointState input", read_only=True)).value
        traj_topic = self.declare_parameter(
            "trajectory_topic", "/joint_trajectory_controller/joint_trajectory",
            describe("trajectory_msgs/JointTrajectory output (the controller's topic)", read_only=True)).value
        use_urdf = self.declare_parameter("use_robot_description", True, describe(
            "also take joint limits from the URDF on /robot_description", read_only=True)).value
        controller_joints = [j for j in self.declare_parameter("controller_joints", [""], describe(
            "the controller's joints, checked against every message before it is published; [''] to learn "
            "them from the controller's state topic (control_msgs), else from /joint_states",
            read_only=True)).value if j]
        diag_period = self.declare_parameter("diagnostics_period", 1.0, describe(
            "seconds between /diagnostics messages", read_only=True, lo=0.05, hi=60.0)).value

        self._planner = ChunkPlanner(self.runner, self._decode_frame, self._param("max_obs_age"))
        self._planner.latency.initial = max(warm, float(self._param("simulated_latency")))
        self._lock = threading.Lock()
        self._generation = 0  # bumped by ~/enable and ~/reset: results of older inferences are dropped
        self._held = True  # the controller is holding (nothing of ours running, or our hold)
        self._controller_joints: tuple[str, ...] = tuple(controller_joints)
        self._joint_state_names: set[str] = set()
        self._name_lists: set[tuple[str, ...]] = set()
        self._log = ChunkLog()
        self._last_state = "disabled" if not self._enabled else "starting"
        self._joints = JointPicker(cfg.joint_names)
        self._aspect = AspectWarner(self.get_logger())
        self._next_due = 0.0
        self._noise_lock = threading.Lock()
        self._noise_rng = self._seeded(int(self._param("noise_seed")))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)

        # ---- subscriptions, publishers, services, timers ----
        self._camera_topics = {}
        for cam in cfg.obs.cameras:
            compressed = self.declare_parameter(f"cameras.{cam.name}.compressed", False, describe(
                f"camera {cam.name}: subscribe to sensor_msgs/CompressedImage", read_only=True)).value
            topic = self.declare_parameter(f"cameras.{cam.name}.topic", "", describe(
                f"camera {cam.name}: topic; empty means /{cam.name}/image_raw[/compressed]", read_only=True)).value
            topic = topic or f"/{cam.name}/image_raw" + ("/compressed" if compressed else "")
            self._camera_topics[cam.name] = topic
            self.create_subscription(CompressedImage if compressed else Image, topic,
                                     lambda m, c=cam.name: self._on_frame(c, m), qos_profile_sensor_data)
        self._state_topics = {}
        for key, dim in self._planner.states.items():
            topic = self.declare_parameter(f"states.{key}.topic", "", describe(
                f"state {key}: geometry_msgs/PoseArray topic (x, y, z of each pose); empty means /{key}",
                read_only=True)).value or f"/{key}"
            if dim % 3:
                raise ValueError(f"the model's state {key!r} has {dim} values; a PoseArray gives 3 per pose")
            self._state_topics[key] = topic
            self.create_subscription(PoseArray, topic, lambda m, k=key: self._on_state(k, m), qos_profile_sensor_data)
        self.create_subscription(JointState, joint_topic, self._on_joint_state, qos_profile_sensor_data)
        if use_urdf:
            self.create_subscription(String, "/robot_description", self._on_robot_description, LATCHED_QOS)
        if not controller_joints:
            self._subscribe_controller_state(traj_topic)
        self._traj_pub = self.create_publisher(JointTrajectory, traj_topic, TRAJECTORY_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._status_pub = self.create_publisher(String, "~/status", 10)
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(diag_period, self._publish_diagnostics)
        # The worker's time: the node's clock, or instants handed over by a lockstep driver.
        self.worker_clock = WorkerClock(self._now)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._inference_loop, name="dp_policy_inference", daemon=True)
        self._worker.start()
        log.info(f"cameras {self._camera_topics}, states {self._state_topics}, joints from {joint_topic}, "
                 f"trajectories to {traj_topic}; "
                 f"{'enabled' if self._enabled else 'disabled until ~/enable'}")

    # ---- helpers ----

    def _subscribe_controller_state(self, traj_topic: str) -> None:
        """The controller's own joint list, from <controller>/controller_state (control_msgs,
        where it is installed: Humble and later publish JointTrajectoryControllerState there)."""
        if not traj_topic.endswith("/joint_trajectory"):
            return
        try:
            from control_msgs.msg import JointTrajectoryControllerState
        except ImportError:
            self.get_logger().info("control_msgs is not installed: the controller's joints are checked against "
                                   "/joint_states (or set controller_joints)")
            return
        topic = traj_topic[:-len("/joint_trajectory")] + "/controller_state"
        self.create_subscription(JointTrajectoryControllerState, topic, self._on_controller_state, 1)

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate only (together, with the reason); the values are read at the next chunk."""
        problem = self.params.problem({p.name: p.value for p in params})
        return SetParametersResult(successful=problem is None, reason=problem or "")

    def _after_set_parameters(self, params) -> None:
        for p in params:
            if p.name == "noise_seed":
                with self._noise_lock:
                    self._noise_rng = self._seeded(int(p.value))

    @staticmethod
    def _seeded(seed: int) -> np.random.Generator | None:
        return np.random.default_rng(seed) if seed >= 0 else None

    def _noise(self) -> np.ndarray | None:
        """The next chunk's initial noise from the seeded generator; None: the backend draws it."""
        with self._noise_lock:
            if self._noise_rng is None:
                return None
            return self._noise_rng.standard_normal((self.cfg.horizon, self.cfg.action_dim)).astype(np.float32)

    def _decode_frame(self, camera: str, msg) -> np.ndarray:
        cam = next(c for c in self.cfg.obs.cameras if c.name == camera)
        return self._aspect.resize(camera, image_msg_to_rgb(msg), cam.height, cam.width)

    def _reject(self, reason: str) -> None:
        self._log.reject(reason)
        self.get_logger().warning(f"message rejected: {reason}", throttle_duration_sec=2.0)

    # ---- sensor callbacks: store and return ----

    def _on_frame(self, camera: str, msg) -> None:
        reason = self._planner.push_frame(camera, stamp_to_sec(msg.header.stamp), msg, self._now())
        if reason:
            self._reject(reason)

    def _on_state(self, key: str, msg: PoseArray) -> None:
        reason = self._planner.push_state(key, stamp_to_sec(msg.header.stamp), pose_positions(msg), self._now())
        if reason:
            self._reject(reason)

    def _on_joint_state(self, msg: JointState) -> None:
        names = tuple(msg.name)
        if names not in self._name_lists:  # what the robot has, for the controller check
            self._name_lists.add(names)
            with self._lock:
                self._joint_state_names.update(names)
        q, reason = self._joints.pick(msg.name, msg.position)
        if q is not None:
            reason = self._planner.push_joints(stamp_to_sec(msg.header.stamp), q, self._now())
        if reason:
            self._reject(reason)

    def _on_robot_description(self, msg: String) -> None:
        try:
            limits = parse_joint_limits(msg.data, self.cfg.joint_names)
        except ValueError as exc:
            self.params.set_urdf(None, str(exc))
            self.get_logger().error(f"/robot_description: {exc}; refusing to move until a usable one arrives "
                                    "(or set use_robot_description false)")
            return
        problem = self.params.set_urdf(limits)
        if problem:
            self.get_logger().error(f"/robot_description: {problem}; refusing to move until the limits agree")
            return
        missing = [j for j in self.cfg.joint_names if j not in limits]
        self.get_logger().info(f"joint limits from /robot_description for {sorted(limits)}"
                               + (f"; not in the URDF: {missing}" if missing else ""))

    def _on_controller_state(self, msg) -> None:
        names = tuple(msg.joint_names)
        if names and names != self._controller_joints:
            self._controller_joints = names
            self.get_logger().info(f"controller joints (from its state topic): {list(names)}")

    # ---- services ----

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        with self._lock:
            was = self._enabled
            self._enabled = bool(request.data)
            self._next_due = 0.0
            self._generation += 1  # an inference in flight belongs to the old state: dropped
        self.worker_clock.wake()
        if request.data:
            if not was:
                self._planner.forget_command()  # the arm may have been moved meanwhile: measure it
            response.message = "enabled" if not was else "already enabled"
        elif not was:
            response.message = "already disabled"
        else:
            held = self._publish_hold()
            response.message = "disabled; " + (held or "holding where the arm will be when the controller switches")
        self._set_state("starting" if request.data else "disabled")
        self.get_logger().info(f"~/enable: {response.message}")
        response.success = True
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        held = self._publish_hold() if self._enabled else "disabled, so no hold command was sent"
        self._planner.reset()
        with self._lock:
            self._next_due = 0.0
            self._generation += 1
        self.worker_clock.wake()
        response.success = True
        response.message = "observation history cleared; " + (held or "holding")
        self.get_logger().info(f"~/reset: {response.message}")
        return response

    def _publish_hold(self) -> str | None:
        """Stop where the controller will be when it takes this over, through the safety
        filter like every chunk. None when sent, else why not."""
        try:
            tun = self.params.tunables()
        except ValueError:  # limits that cannot be checked: keep the position, at the speed limit
            tun = Tunables(1, 1, float(self._param("execution_latency")), 0.0, float(self._param("max_obs_age")),
                           JointLimits.unlimited(self.cfg.action_dim, float(self._param("max_joint_speed"))))
        hold = self._planner.hold(self._now(), tun)
        if hold.note:
            self.get_logger().warning(hold.note)
        if hold.state != "ok":
            return "; ".join(hold.reasons) + ", so no hold command was sent"
        msg, errors = self._message(hold.chunk)
        if errors:
            return "the controller would reject the hold: " + "; ".join(errors)
        with self._lock:
            self._traj_pub.publish(msg)
            self._planner.commit(hold.chunk, hold.t_switch, hold.start)
            self._held = True
        return None

    def _message(self, chunk: TimedChunk) -> tuple[JointTrajectory, list[str]]:
        """The message for a filtered chunk, and every rule of the controller it breaks."""
        msg = JointTrajectory()
        msg.header.stamp = sec_to_time(chunk.origin)
        msg.joint_names = list(self.cfg.joint_names)
        tfs = [float(t - chunk.origin) for t in chunk.times]
        msg.points = [JointTrajectoryPoint(positions=[float(x) for x in q], time_from_start=sec_to_duration(t))
                      for q, t in zip(chunk.positions, tfs)]
        joints, partial = self._controller_joint_list()
        errors = trajectory_violations(msg.joint_names, chunk.origin, tfs, chunk.positions.tolist(), [],
                                       joints, self._now(), allow_partial=partial)
        return msg, errors

    def _controller_joint_list(self) -> tuple[tuple[str, ...], bool]:
        """The controller's joints and whether ours may be a subset: from its state topic or the
        controller_joints parameter (exact), else the names on /joint_states (ours must be there)."""
        if self._controller_joints:
            return self._controller_joints, False
        with self._lock:
            seen = tuple(sorted(self._joint_state_names))
        return (seen, True) if seen else (tuple(self.cfg.joint_names), False)

    # ---- inference ----

    def _inference_loop(self) -> None:
        """The worker thread: one chunk every inference period while enabled."""
        clock = self.worker_clock
        while not self._stop.is_set():
            now = clock.now()
            if not self._enabled or now < self._next_due:
                clock.idle(now, self._next_due if self._enabled else math.inf)
                # Short slices, so a simulated clock (use_sim_time) is followed too.
                clock.wait(0.05 if not self._enabled else min(max(self._next_due - now, 0.0), 0.05))
                continue
            self._next_due = now + self.cfg.dt  # until the chunk says better (next_start)
            with self._lock:
                generation = self._generation
            tun = None
            try:
                tun = self.params.tunables()
            except ValueError as exc:  # limits that contradict each other: nothing can be checked
                result = StepResult("bad_limits", [str(exc)], t_start=now)
            else:
                # The chunk starts at the instant the worker looked at (``now``). Only once its
                # window is fixed is the worker busy (until its result is due): a lockstep driver
                # moves simulated time on from then, never while the window is still being read.
                try:
                    result = self._planner.plan(clock.now, tun, self._noise(), t_start=now,
                                                wait_until=lambda t: clock.wait_until(t, self._stop),
                                                started=lambda: clock.busy(now + tun.simulated_latency))
                    if result.state == "ok":
                        result = self._publish_chunk(result, generation)
                except Exception as exc:  # a bug; nothing was published, and it must show
                    self.get_logger().error(f"chunk failed: {type(exc).__name__}: {exc}", throttle_duration_sec=2.0)
                    result = StepResult("error", [f"planning failed: {type(exc).__name__}: {exc}"], t_start=now)
            self._record(result)
            if result.state in STOP_STATES:
                self._stop_motion(generation, result.state)
            if tun is not None:
                with self._lock:
                    if generation == self._generation:  # ~/enable and ~/reset ask for a chunk at once
                        self._next_due = self._planner.next_start(now, tun)

    def _stop_motion(self, generation: int, why: str) -> None:
        """After a refused chunk, hold instead of finishing the last one on what is now
        stale or wrong information (once: nothing to do while already holding)."""
        with self._lock:
            if self._held or not self._enabled or generation != self._generation:
                return
        held = self._publish_hold()
        self.get_logger().warning(f"{why}: " + (held or "holding where the arm will be"), throttle_duration_sec=2.0)

    def shutdown(self) -> None:
        """Stop cleanly: no chunk after this, and the last command a hold (when enabled)."""
        self._stop_worker()
        if self._enabled:
            held = self._publish_hold()
            self.get_logger().info("stopping: " + (held or "holding where the arm will be"))
            if held is None:
                self._traj_pub.wait_for_all_acked(Duration(seconds=1.0))

    def _stop_worker(self) -> None:
        worker = getattr(self, "_worker", None)  # absent when the constructor failed
        if worker is not None:
            with self._lock:
                self._stop.set()
            self.worker_clock.wake()
            if worker.is_alive() and worker is not threading.current_thread():
                worker.join(timeout=10.0)

    def destroy_node(self):
        self._stop_worker()
        return super().destroy_node()

    def _publish_chunk(self, result: StepResult, generation: int) -> StepResult:
        msg, errors = self._message(result.chunk)
        if errors:  # a mismatch with the controller's joints, or a bug in the planner
            result.state, result.reasons = "unsafe", [f"controller would reject: {e}" for e in errors]
            return result
        with self._lock:  # ~/enable, ~/reset and their hold commands must not interleave with this
            if self._stop.is_set():
                result.state, result.reasons = "disabled", ["the node is stopping"]
            elif not self._enabled:
                result.state, result.reasons = "disabled", ["disabled during inference"]
            elif generation != self._generation:
                result.state, result.reasons = "discarded", [
                    "the node was disabled, enabled or reset during inference: this chunk belongs to before"]
            else:
                self._traj_pub.publish(msg)
                self._planner.commit(result.chunk, result.t_switch, result.start)
                self._held = False
                result.t_published = self._now()
                result.state = "published"
        return result

    def _set_state(self, state: str, reasons: list[str] | None = None) -> None:
        if state != self._last_state:
            text = f"state {self._last_state} -> {state}" + (f": {'; '.join(reasons)}" if reasons else "")
            if state in ("published", "disabled", "starting"):
                self.get_logger().info(text)
            else:
                self.get_logger().warning(text)
            self._last_state = state

    def _record(self, r: StepResult) -> None:
        if r.note and r.state == "published":  # about where a chunk that was sent starts
            self.get_logger().warning(r.note, throttle_duration_sec=2.0)
        status = self._log.record(r)
        self._set_state(r.state, r.reasons)
        if r.state == "disabled":  # asked for: disabled or stopped while a chunk was computed
            self.get_logger().info(f"chunk dropped: {'; '.join(r.reasons)}")
        elif r.state != "published":
            self.get_logger().warning(f"no trajectory published ({r.state}): {'; '.join(r.reasons)}",
                                      throttle_duration_sec=2.0)
        self._status_pub.publish(String(data=json.dumps(status)))

    def _publish_diagnostics(self) -> None:
        level, message, counters = self._log.health(self._enabled)
        st = DiagnosticStatus(name=f"{self.get_name()}: policy", hardware_id=str(self.runner.path),
                              level=bytes([level]), message=message)
        values = {"enabled": self._enabled, "backend": f"{self.runner.backend_name}/{self.runner.device}",
                  "backend_check": self._check, **counters}
        for name, (rx, rej, _held) in self._planner.buffer.counts().items():
            values[f"received_{name}"] = f"{rx} ({rej} rejected)"
        st.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[st])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)


def main(args=None) -> int:
    return spin_node(PolicyNode, NODE_NAME, args)


if __name__ == "__main__":
    raise SystemExit(main())
