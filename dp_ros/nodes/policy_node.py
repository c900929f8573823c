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
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from geometry_msgs.msg import PoseArray
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from dp_ros.core.safety import JointLimits
from dp_ros.core.trajectory_rules import trajectory_violations
from dp_ros.core.urdf import parse_joint_limits
from dp_ros.nodes.common import (
    AspectWarner, JointPicker, describe, image_msg_to_rgb, pose_positions, sec_to_duration, sec_to_time, spin_node,
    stamp_to_sec,
)
from dp_ros.paths import share_dir
from dp_ros.runtime.backends import check_against_reference, compile_option, load_runner, resolve_model_path
from dp_ros.runtime.loop import ChunkPlanner, StepResult, Tunables

NODE_NAME = "dp_policy"
TRAJECTORY_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass
class _Counters:
    chunks: int = 0
    over_budget: int = 0
    refused: int = 0
    dropped_actions: int = 0
    rejected_msgs: int = 0
    speed_limited: int = 0
    limit_clamped: int = 0


class PolicyNode(Node):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
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
        if not model_path:
            raise ValueError("parameter model_path is empty: set it to a checkpoint directory")
        path = resolve_model_path(model_path, share_dir())
        options = {} if torch_compile is None else {"compile": torch_compile}  # None: the backend's default
        self.runner = load_runner(path, backend, device, **options)
        cfg = self.cfg = self.runner.config
        warm = self.runner.warm_up()
        log.info(f"loaded {path} on {self.runner.backend_name}/{self.runner.device}: "
                 f"T_o={cfg.n_obs_steps} T_p={cfg.horizon} dt={cfg.dt} joints={list(cfg.joint_names)} "
                 f"cameras={[c.name for c in cfg.obs.cameras]}; warm-up inference {warm * 1e3:.0f} ms")
        self._check = "not run (verify_backend is false)"
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

        # ---- tunable at run time (validated in _on_set_parameters, read at every chunk) ----
        t_max = cfg.max_action_steps
        k_max = cfg.noise.num_train_steps
        self.declare_parameter("action_horizon", cfg.n_action_steps, describe(
            f"T_a, actions executed per chunk, 1..T_p-T_o+1 = {t_max}", lo=1, hi=t_max, integer=True))
        self.declare_parameter("num_inference_steps", cfg.noise.num_inference_steps, describe(
            f"DDIM denoising steps per chunk, 1..K = {k_max}", lo=1, hi=k_max, integer=True))
        self.declare_parameter("inference_period", 0.0, describe(
            "seconds between chunk starts; 0 means action_horizon * dt", lo=0.0, hi=60.0))
        self.declare_parameter("execution_latency", 0.02, describe(
            "seconds from publishing to the controller acting; actions due before now + this are dropped",
            lo=0.0, hi=1.0))
        self.declare_parameter("action_time_offset", 0.0, describe(
            "seconds added to every action time (t_obs + i*dt + offset)", lo=-1.0, hi=1.0))
        self.declare_parameter("max_obs_age", 0.25, describe(
            "seconds; a stream whose newest message is older makes the observation stale", lo=0.001, hi=10.0))
        self.declare_parameter("max_joint_speed", 1.0, describe(
            "rad/s (m/s for prismatic joints) per joint, from the measured position and between points",
            lo=1e-6, hi=100.0))
        n = cfg.action_dim
        self.declare_parameter("joint_lower_limits", [-math.inf] * n, describe(
            "lower position limit per joint, in joint_names order; -.inf for none"))
        self.declare_parameter("joint_upper_limits", [math.inf] * n, describe(
            "upper position limit per joint, in joint_names order; .inf for none"))

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
        diag_period = self.declare_parameter("diagnostics_period", 1.0, describe(
            "seconds between /diagnostics messages", read_only=True, lo=0.05, hi=60.0)).value

        self._planner = ChunkPlanner(self.runner, self._decode_frame, self._param("max_obs_age"))
        self._urdf_limits: dict[str, tuple[float, float, float]] = {}
        self._lock = threading.Lock()
        self._counters = _Counters()
        self._last: StepResult | None = None
        self._last_state = "disabled" if not self._enabled else "starting"
        self._last_reject = ""
        self._joints = JointPicker(cfg.joint_names)
        self._aspect = AspectWarner(self.get_logger())
        self._next_due = 0.0
        self.add_on_set_parameters_callback(self._on_set_parameters)

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
        self._traj_pub = self.create_publisher(JointTrajectory, traj_topic, TRAJECTORY_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._status_pub = self.create_publisher(String, "~/status", 10)
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(diag_period, self._publish_diagnostics)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._inference_loop, name="dp_policy_inference", daemon=True)
        self._worker.start()
        log.info(f"cameras {self._camera_topics}, states {self._state_topics}, joints from {joint_topic}, "
                 f"trajectories to {traj_topic}; "
                 f"{'enabled' if self._enabled else 'disabled until ~/enable'}")

    # ---- helpers ----

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _tunables(self) -> Tunables:
        n = self.cfg.action_dim
        lower = np.array(self._param("joint_lower_limits"), dtype=float)
        upper = np.array(self._param("joint_upper_limits"), dtype=float)
        speed = np.full(n, float(self._param("max_joint_speed")))
        for i, name in enumerate(self.cfg.joint_names):
            if name in self._urdf_limits:
                lo, hi, vel = self._urdf_limits[name]
                lower[i], upper[i], speed[i] = max(lower[i], lo), min(upper[i], hi), min(speed[i], vel)
        return Tunables(
            n_action_steps=int(self._param("action_horizon")),
            num_inference_steps=int(self._param("num_inference_steps")),
            execution_latency=float(self._param("execution_latency")),
            action_time_offset=float(self._param("action_time_offset")),
            max_obs_age=float(self._param("max_obs_age")),
            limits=JointLimits(lower, upper, speed),
        )

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate only; the values are read at the start of the next chunk."""
        n = self.cfg.action_dim
        staged = {p.name: p.value for p in params}

        def get(name):
            return staged[name] if name in staged else self._param(name)

        for name in ("joint_lower_limits", "joint_upper_limits"):
            if name in staged:
                v = list(staged[name])
                if len(v) != n:
                    return SetParametersResult(successful=False, reason=(
                        f"{name} needs {n} values (one per joint in {list(self.cfg.joint_names)}), got {len(v)}"))
                if any(math.isnan(x) for x in v):
                    return SetParametersResult(successful=False, reason=f"{name} contains NaN")
        if "joint_lower_limits" in staged or "joint_upper_limits" in staged:
            lo, hi = np.array(get("joint_lower_limits"), float), np.array(get("joint_upper_limits"), float)
            if np.any(lo > hi):
                bad = [self.cfg.joint_names[i] for i in np.nonzero(lo > hi)[0]]
                return SetParametersResult(successful=False, reason=f"lower limit above upper limit for {bad}")
        if "execution_latency" in staged and staged["execution_latency"] >= self.cfg.horizon * self.cfg.dt:
            return SetParametersResult(successful=False, reason=(
                f"execution_latency {staged['execution_latency']} s is longer than a whole chunk "
                f"({self.cfg.horizon} x {self.cfg.dt} s)"))
        return SetParametersResult(successful=True)

    def _decode_frame(self, camera: str, msg) -> np.ndarray:
        cam = next(c for c in self.cfg.obs.cameras if c.name == camera)
        return self._aspect.resize(camera, image_msg_to_rgb(msg), cam.height, cam.width)

    def _reject(self, reason: str) -> None:
        with self._lock:
            self._counters.rejected_msgs += 1
            self._last_reject = reason
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
        q, reason = self._joints.pick(msg.name, msg.position)
        if q is not None:
            reason = self._planner.push_joints(stamp_to_sec(msg.header.stamp), q, self._now())
        if reason:
            self._reject(reason)

    def _on_robot_description(self, msg: String) -> None:
        try:
            limits = parse_joint_limits(msg.data, self.cfg.joint_names)
        except ValueError as exc:
            self.get_logger().error(f"/robot_description: {exc}; keeping the limits from parameters")
            return
        self._urdf_limits = limits
        missing = [j for j in self.cfg.joint_names if j not in limits]
        self.get_logger().info(f"joint limits from /robot_description for {sorted(limits)}"
                               + (f"; not in the URDF: {missing}" if missing else ""))

    # ---- services ----

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        with self._lock:
            was = self._enabled
            self._enabled = bool(request.data)
            self._next_due = 0.0
        self._wake.set()
        if request.data:
            response.message = "enabled" if not was else "already enabled"
        elif not was:
            response.message = "already disabled"
        else:
            held = self._publish_hold()
            response.message = "disabled; " + ("holding the measured position" if held
                                               else "no fresh joint state, so no hold command was sent")
        self._set_state("starting" if request.data else "disabled")
        self.get_logger().info(f"~/enable: {response.message}")
        response.success = True
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        held = self._publish_hold() if self._enabled else False
        self._planner.reset()
        with self._lock:
            self._next_due = 0.0
        self._wake.set()
        response.success = True
        response.message = "observation history cleared" + ("; holding the measured position" if held else "")
        self.get_logger().info(f"~/reset: {response.message}")
        return response

    def _publish_hold(self) -> bool:
        """Replace the running chunk with the measured position (stamp 0: start now)."""
        q = self._planner.measured(self._now(), float(self._param("max_obs_age")))
        if q is None:
            return False
        msg = JointTrajectory()
        msg.joint_names = list(self.cfg.joint_names)
        msg.points = [JointTrajectoryPoint(positions=[float(x) for x in q], time_from_start=sec_to_duration(self.cfg.dt))]
        self._traj_pub.publish(msg)
        return True

    # ---- inference ----

    def _inference_loop(self) -> None:
        """The worker thread: one chunk every inference period while enabled."""
        while not self._stop.is_set():
            now = self._now()
            if not self._enabled or now < self._next_due:
                # Wall-clock waits in short slices, so a simulated clock is followed too.
                wait = 0.05 if not self._enabled else min(max(self._next_due - now, 0.0), 0.05)
                self._wake.wait(wait)
                self._wake.clear()
                continue
            period = float(self._param("inference_period")) or self._param("action_horizon") * self.cfg.dt
            self._next_due = now + period
            try:
                result = self._planner.plan(self._now, self._tunables())
                if result.state == "ok":
                    result = self._publish_chunk(result)
                self._record(result)
            except Exception as exc:  # keep the worker alive; nothing was published
                self.get_logger().error(f"chunk failed: {type(exc).__name__}: {exc}", throttle_duration_sec=2.0)

    def destroy_node(self):
        worker = getattr(self, "_worker", None)  # absent when the constructor failed
        if worker is not None:
            self._stop.set()
            self._wake.set()
            if worker.is_alive() and worker is not threading.current_thread():
                worker.join(timeout=10.0)
        return super().destroy_node()

    def _publish_chunk(self, result: StepResult) -> StepResult:
        chunk = result.chunk
        msg = JointTrajectory()
        msg.header.stamp = sec_to_time(chunk.origin)
        msg.joint_names = list(self.cfg.joint_names)
        tfs = [float(t - chunk.origin) for t in chunk.times]
        msg.points = [JointTrajectoryPoint(positions=[float(x) for x in q], time_from_start=sec_to_duration(t))
                      for q, t in zip(chunk.positions, tfs)]
        now = self._now()
        errors = trajectory_violations(msg.joint_names, chunk.origin, tfs, chunk.positions.tolist(), [],
                                       self.cfg.joint_names, now)
        if errors:  # a bug guard: the planner should never produce this
            result.state, result.reasons = "unsafe", [f"controller would reject: {e}" for e in errors]
            return result
        with self._lock:  # ~/enable(false) and its hold command must not interleave with this
            if not self._enabled:
                result.state, result.reasons = "disabled", ["disabled during inference"]
                return result
            self._traj_pub.publish(msg)
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
        c = self._counters
        with self._lock:
            self._last = r
            if r.state == "published":
                c.chunks += 1
                c.dropped_actions += r.chunk.dropped
                c.speed_limited += r.report.speed_limited
                c.limit_clamped += r.report.limit_clamped
            elif r.state == "over_budget":
                c.over_budget += 1
            elif r.state != "disabled":
                c.refused += 1
        self._set_state(r.state, r.reasons)
        if r.state != "published":
            self.get_logger().warning(f"no trajectory published ({r.state}): {'; '.join(r.reasons)}",
                                      throttle_duration_sec=2.0)
        status = {
            "state": r.state,
            "reasons": r.reasons,
            "t_obs": r.t_obs,
            "t_start": r.t_start,
            "t_end": r.t_end,
            "t_published": r.t_published,
            "prep_ms": round(r.prep_s * 1e3, 3),
            "inference_ms": round(r.inference_s * 1e3, 3),
            "points": 0 if r.chunk is None or r.state != "published" else int(len(r.chunk.times)),
            "dropped": 0 if r.chunk is None else int(r.chunk.dropped),
            "speed_limited": 0 if r.report is None else r.report.speed_limited,
            "limit_clamped": 0 if r.report is None else r.report.limit_clamped,
        }
        self._status_pub.publish(String(data=json.dumps(status)))

    # ---- diagnostics ----

    def _publish_diagnostics(self) -> None:
        with self._lock:
            c, last, enabled, reject = _Counters(**vars(self._counters)), self._last, self._enabled, self._last_reject
        st = DiagnosticStatus(name=f"{self.get_name()}: policy", hardware_id=str(self.runner.path))
        if not enabled:
            st.level, st.message = DiagnosticStatus.OK, "disabled"
        elif last is None:
            st.level, st.message = DiagnosticStatus.OK, "enabled, waiting for the first chunk"
        elif last.state == "published":
            st.level, st.message = DiagnosticStatus.OK, "publishing"
        elif last.state in ("waiting", "over_budget"):
            st.level, st.message = DiagnosticStatus.WARN, f"{last.state}: {'; '.join(last.reasons)}"
        else:
            st.level, st.message = DiagnosticStatus.ERROR, f"{last.state}: {'; '.join(last.reasons)}"
        values = {
            "enabled": enabled,
            "backend": f"{self.runner.backend_name}/{self.runner.device}",
            "backend_check": self._check,
            "chunks_published": c.chunks,
            "chunks_over_budget": c.over_budget,
            "chunks_refused": c.refused,
            "actions_dropped_late": c.dropped_actions,
            "values_speed_limited": c.speed_limited,
            "values_limit_clamped": c.limit_clamped,
            "messages_rejected": c.rejected_msgs,
            "last_rejection": reject,
            "stale_streams": ",".join(last.stale) if last else "",
            "last_inference_ms": f"{last.inference_s * 1e3:.1f}" if last else "",
        }
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
