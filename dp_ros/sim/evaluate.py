"""Closed-loop evaluation in the simulator: the policy node drives the simulated arm.

``dp_ros sim eval --model M --episodes 50`` starts the simulated arm and the policy
node in one process, each with its parameter file (``config/sim.yaml`` and
``config/policy.yaml``, as ``ros2 launch dp_ros sim.launch.py`` passes them), and for
each episode:

1. disables the policy (``/dp_policy/enable`` false: it holds the measured position),
2. resets the scene (``/sim_arm/reset``: arm home, targets at a new random position),
3. clears the policy's observation history (``/dp_policy/reset``) and waits for a
   fresh window,
4. enables the policy and watches ``/sim_arm/task`` until the tip touches a target
   (success, and which one) or the episode times out.

By default the nodes run in lockstep simulated time (``sim.lockstep``): the results
depend on ``--seed`` only (the scene's targets, and the denoiser's noise, seeded per
episode), and ``--latency L`` makes every inference take exactly L seconds of
simulated time. ``--realtime`` runs on the wall clock instead, as ``sim.launch.py``
does. ``--set NAME=VALUE`` sets a policy node parameter, checked as ``ros2 param set``
would be.

It prints one line per episode and a summary (success, goals, motion metrics:
``sim.metrics``) and one JSON line; ``--json FILE`` writes the same to a file.
``--video`` writes an MP4 of every episode from the camera topic and ``--strip`` a PNG
with the frame at the end of each episode.
"""
from __future__ import annotations

import argparse
import json
import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np

from dp_ros.console import add_console_arguments, emit_json, quiet_console
from dp_ros.sim.results import (
    GOALS, EpisodeResult, format_motion, format_summary, motion_summary, summarize, write_trace,
)

class _Frames:
    """Camera frames of the running episode, for --video (every frame) and --strip (the last)."""

    def __init__(self, video: Path | None, fps: float):
        self.video_path, self.fps = video, fps
        self._writer = None
        self.last: np.ndarray | None = None
        self.ends: list[np.ndarray] = []
        self.active = False
        self._lock = threading.Lock()

    def add(self, rgb: np.ndarray, label: str) -> None:
        import cv2

        with self._lock:
            if not self.active:
                return
            self.last = rgb
            if self.video_path is None:
                return
            big = cv2.resize(rgb, (rgb.shape[1] * 3, rgb.shape[0] * 3), interpolation=cv2.INTER_NEAREST)
            bgr = cv2.cvtColor(big, cv2.COLOR_RGB2BGR)
            cv2.putText(bgr, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            if self._writer is None:
                self.video_path.parent.mkdir(parents=True, exist_ok=True)
                self._writer = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                               (bgr.shape[1], bgr.shape[0]))
                if not self._writer.isOpened():
                    raise OSError(f"cannot write a video to {self.video_path}")
            self._writer.write(bgr)

    def end_episode(self) -> None:
        with self._lock:
            self.active = False
            if self.last is not None:
                self.ends.append(self.last)
            self.last = None

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.release()
                self._writer = None


def write_strip(frames: list[np.ndarray], results: list[EpisodeResult], path: Path, columns: int = 10) -> None:
    """One tile per episode (its last frame), a green or red bar for success or failure."""
    import cv2

    h, w = frames[0].shape[:2]
    rows = (len(frames) + columns - 1) // columns
    sheet = np.full((rows * (h + 6), columns * w, 3), 255, np.uint8)
    for k, (img, r) in enumerate(zip(frames, results)):
        y, x = (k // columns) * (h + 6), (k % columns) * w
        sheet[y:y + h, x:x + w] = img
        sheet[y + h:y + h + 4, x:x + w] = (40, 170, 40) if r.success else (200, 40, 40)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def _make_eval_node(frames: _Frames | None, camera_topic: str, lockstep: bool, sim):
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from std_srvs.srv import SetBool, Trigger

    from dp_ros.nodes.common import image_msg_to_rgb
    from dp_ros.sim.lockstep import node_options
    from dp_ros.sim.metrics import chunk_motion, hold_fraction, seam_jumps, seam_steps, speed_ratio

    class EvalNode(Node):
        def __init__(self):
            # Its times come from the simulator (sim.time()), so it needs no /clock of its own.
            super().__init__("sim_eval", **node_options(lockstep))
            self.clock = None  # sim.lockstep.Lockstep or RealTime, set once every node exists
            self._lock = threading.Lock()
            self.task: dict | None = None
            self.task_stamp = 0.0
            self.published = 0
            self.late = 0  # chunks dropped because they were ready after their planned switch
            self.points = [0, 0]  # published, changed by the filter
            self.inference_ms: list[float] = []
            self.label = ""
            self.trace: list = []  # the first episode's accepted trajectories: (sim time, Command)
            self.create_subscription(String, "/sim_arm/task", self._on_task, 10)
            self.create_subscription(String, "/dp_policy/status", self._on_status, 10)
            if frames is not None:
                self.create_subscription(Image, camera_topic, lambda m: frames.add(image_msg_to_rgb(m), self.label),
                                         qos_profile_sensor_data)
            self._reset_sim = self.create_client(Trigger, "/sim_arm/reset")
            self._reset_policy = self.create_client(Trigger, "/dp_policy/reset")
            self._enable = self.create_client(SetBool, "/dp_policy/enable")

        def _now(self) -> float:
            return sim.time()

        def _on_task(self, msg) -> None:
            with self._lock:
                self.task, self.task_stamp = json.loads(msg.data), self._now()

        def _on_status(self, msg) -> None:
            status = json.loads(msg.data)
            if status.get("state") == "late":
                with self._lock:
                    self.late += 1
            if status.get("state") == "published":
                with self._lock:
                    self.published += 1
                    self.points[0] += int(status.get("points", 0))
                    self.points[1] += int(status.get("points_changed", 0))
                    self.inference_ms.append(float(status["inference_ms"]))

        def enable(self, on: bool) -> None:
            res = self.clock.call(self._enable, SetBool.Request(data=on))
            if not res.success:
                raise RuntimeError(f"/dp_policy/enable {on}: {res.message}")

        def reset(self) -> None:
            for client in (self._reset_sim, self._reset_policy):
                res = self.clock.call(client, Trigger.Request())
                if not res.success:
                    raise RuntimeError(f"{client.srv_name}: {res.message}")

        def episode(self, index: int, timeout: float, settle: float, dt: float,
                    max_velocity: np.ndarray) -> EpisodeResult:
            self.enable(False)
            self.reset()
            self.clock.sleep(settle)  # a fresh observation window after the reset
            with self._lock:
                published0, points0 = self.published, list(self.points)
            self.label = f"episode {index + 1}"
            if frames is not None:
                frames.active = True
            t0 = self._now()
            sim_t0 = sim.sim.time
            n_traj = len(sim.trajectories)
            rejected0 = sim.sim.controller.rejected
            self.enable(True)
            result = None
            while result is None:
                self.clock.sleep(0.02)
                t = self._now() - t0
                with self._lock:
                    task, stamp, chunks = self.task, self.task_stamp, self.published - published0
                if task and task["success"] and stamp > t0 + 0.15:  # a report from after the reset
                    result = EpisodeResult(index, True, int(task["goal"]), round(t, 2), chunks)
                elif t > timeout:
                    result = EpisodeResult(index, False, -1, round(t, 2), chunks)
            self.enable(False)
            commands = [c for c in sim.trajectories[n_traj:] if c[0] <= sim.sim.time]
            t_end = sim_t0 + result.seconds
            t_first = min(commands[0][0], t_end) if commands else t_end
            result.startup = round(t_first - sim_t0, 4)
            result.holding, result.periods = hold_fraction(commands, t_first, t_end, dt)
            result.seam_jumps = tuple(round(j, 5) for j in seam_jumps(commands))
            result.seam_steps = tuple(round(j, 5) for j in seam_steps(commands, dt))
            motion = chunk_motion(commands, dt)
            result.chunk_motion_median = round(float(np.median(motion)), 5) if motion else 0.0
            result.speed_ratio = round(speed_ratio(commands, max_velocity), 5)
            result.rejected = sim.sim.controller.rejected - rejected0
            if index == 0:
                self.trace = commands
            with self._lock:
                result.points, result.points_changed = (self.points[0] - points0[0], self.points[1] - points0[1])
            if frames is not None:
                self.clock.sleep(0.1)  # the frame that shows the outcome
                frames.end_episode()
            return result

    return EvalNode()


def parse_sets(items: list[str]) -> dict:
    """``NAME=VALUE`` strings -> {name: value}, each value read as YAML (as ``ros2 param set`` does)."""
    import yaml

    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set {item!r}: expected NAME=VALUE")
        out[name.strip()] = yaml.safe_load(text)
    return out


def apply_sets(node, values: dict) -> None:
    """Set the node's parameters as ``ros2 param set`` would; ValueError with the node's
    own reason for an unknown name, a wrong type, a value out of range or a read-only one."""
    from rcl_interfaces.msg import ParameterType
    from rclpy.parameter import Parameter

    for name, value in values.items():
        if not node.has_parameter(name):
            raise ValueError(f"--set {name}: the policy node has no parameter {name!r}")
        if isinstance(value, int) and not isinstance(value, bool) and \
                node.describe_parameter(name).type == ParameterType.PARAMETER_DOUBLE:
            value = float(value)
        try:
            result = node.set_parameters([Parameter(name, value=value)])[0]
        except Exception as exc:  # a type rclpy cannot make a parameter of
            raise ValueError(f"--set {name}={value!r}: {exc}") from None
        if not result.successful:
            raise ValueError(f"--set {name}={value!r}: {result.reason}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="sim_reach",
                   help="checkpoint directory, or the name of one under the package's models/ (default: sim_reach)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the scene's target positions and of the denoiser's noise (per episode)")
    p.add_argument("--timeout", type=float, default=12.0, help="seconds per episode before it counts as a failure")
    p.add_argument("--latency", type=float, default=0.0,
                   help="lockstep: seconds of simulated time every inference takes (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="set a policy node parameter (repeatable), e.g. --set action_horizon=4")
    p.add_argument("--realtime", action="store_true", help="run on the wall clock instead of lockstep time")
    p.add_argument("--json", default=None, help="write the results as JSON to this file ('-': one line on stdout)")
    p.add_argument("--backend", default=None, help="override the policy's backend parameter (auto, onnxruntime, ...)")
    p.add_argument("--params", default=None, help="policy parameter file (default: the package's config/policy.yaml)")
    p.add_argument("--sim-params", default=None, help="simulator parameter file (default: config/sim.yaml)")
    p.add_argument("--video", default=None, help="write an MP4 of every episode from the camera")
    p.add_argument("--strip", default=None, help="write a PNG with the last frame of every episode")
    p.add_argument("--label", default=None, help="name printed with the results (default: the model)")
    p.add_argument("--trace", default=None,
                   help="write the trajectories the controller accepted in the first episode to this JSON file")
    add_console_arguments(p)


def episode_seed(seed: int, index: int) -> int:
    """The denoiser's noise seed for one episode of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] & 0x7FFFFFFF)


def run(args: argparse.Namespace, on_episode=None) -> int:
    """``on_episode(result)``, if given, is called after each episode (progress bars)."""
    if args.episodes < 1:
        raise SystemExit("dp_ros sim eval: --episodes must be >= 1")
    if not args.latency >= 0:
        raise SystemExit(f"dp_ros sim eval: --latency must be >= 0 seconds, got {args.latency}")
    if args.realtime and args.latency:
        raise SystemExit("dp_ros sim eval: --latency needs lockstep time (leave out --realtime)")
    try:
        sets = parse_sets(args.set)
    except ValueError as exc:
        raise SystemExit(f"dp_ros sim eval: {exc}") from None
    with quiet_console(args, "sim_eval"):
        return _run(args, sets, on_episode)


def _run(args: argparse.Namespace, sets: dict, on_episode=None) -> int:
    from rclpy.parameter import Parameter

    from dp_ros.model.checkpoint import read_config
    from dp_ros.nodes.common import InProcessNodes
    from dp_ros.nodes.policy_node import PolicyNode
    from dp_ros.paths import package_file, share_dir
    from dp_ros.runtime.backends import resolve_model_path
    from dp_ros.sim.lockstep import node_options, start_clock
    from dp_ros.sim.sim_node import SimArmNode

    lockstep = not args.realtime
    params = [Path(args.params) if args.params else package_file("config", "policy.yaml"),
              Path(args.sim_params) if args.sim_params else package_file("config", "sim.yaml")]
    frames = _Frames(Path(args.video) if args.video else None, 30.0) if (args.video or args.strip) else None
    results: list[EpisodeResult] = []
    try:
        with InProcessNodes(params) as ros:
            try:
                overrides = [Parameter("seed", value=args.seed), Parameter("lockstep", value=lockstep)]
                if frames is not None:
                    overrides.append(Parameter("camera_rate", value=30.0))  # the camera is what gets saved
                elif not read_config(resolve_model_path(args.model, share_dir()))[0].obs.cameras:
                    overrides.append(Parameter("camera_rate", value=0.0))  # nobody looks: save the rendering
                sim = ros.add(SimArmNode(parameter_overrides=overrides, **node_options(lockstep)))
                sim.record_trajectories = True  # for the motion metrics, in real time too
                overrides = [Parameter("model_path", value=args.model), Parameter("enabled_on_start", value=False),
                             Parameter("use_sim_time", value=lockstep)]
                if args.backend:
                    overrides.append(Parameter("backend", value=args.backend))
                policy = ros.add(PolicyNode(parameter_overrides=overrides, **node_options(lockstep)))
                apply_sets(policy, {**sets, **({"simulated_latency": args.latency} if args.latency else {})})
                evaluator = ros.add(_make_eval_node(frames, f"/{sim.camera}/image_raw", lockstep, sim))
                clock = evaluator.clock = start_clock(ros.nodes, sim, lockstep)
            except Exception as exc:
                print(f"dp_ros sim eval: cannot start: {exc}")
                return 2
            label = args.label or str(policy.runner.path)
            settle = policy.cfg.n_obs_steps * policy.cfg.dt + 0.2
            try:
                for i in range(args.episodes):
                    apply_sets(policy, {"noise_seed": episode_seed(args.seed, i)})
                    r = evaluator.episode(i, args.timeout, settle, policy.cfg.dt,
                                          policy.params.limits().max_velocity)
                    results.append(r)
                    outcome = f"touched the {GOALS[r.goal]} target" if r.success else "no success"
                    print(f"episode {i + 1}/{args.episodes}: {outcome} after {r.seconds:.1f} s ({r.chunks} chunks)",
                          flush=True)
                    if on_episode is not None:
                        on_episode(r)
            finally:
                clock.close()
    finally:
        if frames is not None:
            frames.close()
    summary = summarize(results)
    summary.update(motion_summary(results))
    ms = evaluator.inference_ms
    summary["inference_ms_p50"] = float(np.percentile(ms, 50)) if ms else None
    summary["latency_s"] = args.latency
    summary["chunks_late"] = evaluator.late
    summary["time"] = "lockstep" if lockstep else "real time"
    print(format_summary(summary, label))
    print(format_motion(summary, args.latency))
    if ms:
        print(f"inference ({policy.runner.backend_name}/{policy.runner.device}, wall time): "
              f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms over {len(ms)} chunks")
    if frames is not None and args.video:
        print(f"video: {args.video}")
    if frames is not None and args.strip and frames.ends:
        write_strip(frames.ends, results, Path(args.strip))
        print(f"image strip: {args.strip}")
    record = {"model": label, **summary, "goal_counts": summary["goals"],
              "episodes": [{"success": r.success, "goal": r.goal, "duration_s": r.seconds} for r in results],
              "results": [asdict(r) for r in results]}
    emit_json(args.json, "sim_eval", record)
    if args.trace:
        write_trace(Path(args.trace), evaluator.trace, policy.cfg)
    return 0
