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

It prints a table and one JSON line: success rate, how often each goal was chosen,
time to success. ``--video`` writes an MP4 of every episode from the camera topic and
``--strip`` a PNG with the frame at the end of each episode.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

GOALS = ("left", "right")


@dataclass
class EpisodeResult:
    index: int
    success: bool
    goal: int  # 0 left, 1 right, -1 none
    seconds: float  # to success, or the timeout
    chunks: int  # chunks the policy published during the episode


def summarize(results: list[EpisodeResult]) -> dict:
    """Success rate, goals chosen (as counts and as a fraction of all episodes), time to success."""
    n = len(results)
    ok = [r for r in results if r.success]
    goals = {name: sum(1 for r in ok if r.goal == g) for g, name in enumerate(GOALS)}
    times = [r.seconds for r in ok]
    return {
        "episodes": n,
        "successes": len(ok),
        "success_rate": len(ok) / n if n else 0.0,
        "goals": goals,
        "goal_fraction": {k: v / n if n else 0.0 for k, v in goals.items()},
        "seconds_to_success": {"mean": float(np.mean(times)), "max": float(np.max(times))} if times else None,
    }


def format_summary(s: dict, label: str) -> str:
    lines = [f"{label}: {s['successes']}/{s['episodes']} episodes succeeded ({100 * s['success_rate']:.0f}%)"]
    lines.append("goal chosen: " + ", ".join(
        f"{g} {n} ({100 * s['goal_fraction'][g]:.0f}% of episodes)" for g, n in s["goals"].items()))
    if s["seconds_to_success"]:
        t = s["seconds_to_success"]
        lines.append(f"time to success: mean {t['mean']:.1f} s, max {t['max']:.1f} s")
    return "\n".join(lines)


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


def _make_eval_node(frames: _Frames | None, camera_topic: str):
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from std_srvs.srv import SetBool, Trigger

    from dp_ros.nodes.common import call_service, image_msg_to_rgb

    class EvalNode(Node):
        def __init__(self):
            super().__init__("sim_eval")
            self._lock = threading.Lock()
            self.task: dict | None = None
            self.task_stamp = 0.0
            self.published = 0
            self.inference_ms: list[float] = []
            self.label = ""
            self.create_subscription(String, "/sim_arm/task", self._on_task, 10)
            self.create_subscription(String, "/dp_policy/status", self._on_status, 10)
            if frames is not None:
                self.create_subscription(Image, camera_topic, lambda m: frames.add(image_msg_to_rgb(m), self.label),
                                         qos_profile_sensor_data)
            self._reset_sim = self.create_client(Trigger, "/sim_arm/reset")
            self._reset_policy = self.create_client(Trigger, "/dp_policy/reset")
            self._enable = self.create_client(SetBool, "/dp_policy/enable")

        def _on_task(self, msg) -> None:
            with self._lock:
                self.task, self.task_stamp = json.loads(msg.data), time.monotonic()

        def _on_status(self, msg) -> None:
            status = json.loads(msg.data)
            if status.get("state") == "published":
                with self._lock:
                    self.published += 1
                    self.inference_ms.append(float(status["inference_ms"]))

        def enable(self, on: bool) -> None:
            res = call_service(self._enable, SetBool.Request(data=on))
            if not res.success:
                raise RuntimeError(f"/dp_policy/enable {on}: {res.message}")

        def reset(self) -> None:
            for client in (self._reset_sim, self._reset_policy):
                res = call_service(client, Trigger.Request())
                if not res.success:
                    raise RuntimeError(f"{client.srv_name}: {res.message}")

        def episode(self, index: int, timeout: float, settle: float) -> EpisodeResult:
            self.enable(False)
            self.reset()
            time.sleep(settle)  # a fresh observation window after the reset
            with self._lock:
                published0 = self.published
            self.label = f"episode {index + 1}"
            if frames is not None:
                frames.active = True
            t0 = time.monotonic()
            self.enable(True)
            result = None
            while result is None:
                time.sleep(0.02)
                t = time.monotonic() - t0
                with self._lock:
                    task, stamp, chunks = self.task, self.task_stamp, self.published - published0
                if task and task["success"] and stamp > t0 + 0.15:  # a report from after the reset
                    result = EpisodeResult(index, True, int(task["goal"]), round(t, 2), chunks)
                elif t > timeout:
                    result = EpisodeResult(index, False, -1, round(t, 2), chunks)
            self.enable(False)
            if frames is not None:
                time.sleep(0.1)  # the frame that shows the outcome
                frames.end_episode()
            return result

    return EvalNode()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="sim_reach",
                   help="checkpoint directory, or the name of one under the package's models/ (default: sim_reach)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=1, help="seed of the scene's target positions")
    p.add_argument("--timeout", type=float, default=12.0, help="seconds per episode before it counts as a failure")
    p.add_argument("--backend", default=None, help="override the policy's backend parameter (auto, onnxruntime, ...)")
    p.add_argument("--params", default=None, help="policy parameter file (default: the package's config/policy.yaml)")
    p.add_argument("--sim-params", default=None, help="simulator parameter file (default: config/sim.yaml)")
    p.add_argument("--video", default=None, help="write an MP4 of every episode from the camera")
    p.add_argument("--strip", default=None, help="write a PNG with the last frame of every episode")
    p.add_argument("--label", default=None, help="name printed with the results (default: the model)")


def run(args: argparse.Namespace) -> int:
    from rclpy.parameter import Parameter

    from dp_ros.model.checkpoint import read_config
    from dp_ros.nodes.common import InProcessNodes
    from dp_ros.nodes.policy_node import PolicyNode
    from dp_ros.paths import package_file, share_dir
    from dp_ros.runtime.backends import resolve_model_path
    from dp_ros.sim.sim_node import SimArmNode

    if args.episodes < 1:
        raise SystemExit("dp_ros sim eval: --episodes must be >= 1")
    params = [Path(args.params) if args.params else package_file("config", "policy.yaml"),
              Path(args.sim_params) if args.sim_params else package_file("config", "sim.yaml")]
    frames = _Frames(Path(args.video) if args.video else None, 30.0) if (args.video or args.strip) else None
    results: list[EpisodeResult] = []
    try:
        with InProcessNodes(params) as ros:
            try:
                overrides = [Parameter("seed", value=args.seed)]
                if frames is not None:
                    overrides.append(Parameter("camera_rate", value=30.0))  # the camera is what gets saved
                elif not read_config(resolve_model_path(args.model, share_dir()))[0].obs.cameras:
                    overrides.append(Parameter("camera_rate", value=0.0))  # nobody looks: save the rendering
                sim = ros.add(SimArmNode(parameter_overrides=overrides))
                overrides = [Parameter("model_path", value=args.model), Parameter("enabled_on_start", value=False)]
                if args.backend:
                    overrides.append(Parameter("backend", value=args.backend))
                policy = ros.add(PolicyNode(parameter_overrides=overrides))
                evaluator = ros.add(_make_eval_node(frames, f"/{sim.camera}/image_raw"))
            except Exception as exc:
                print(f"dp_ros sim eval: cannot start: {exc}")
                return 2
            ros.spin()
            label = args.label or str(policy.runner.path)
            time.sleep(1.0)  # discovery, the first messages
            settle = policy.cfg.n_obs_steps * policy.cfg.dt + 0.2
            for i in range(args.episodes):
                r = evaluator.episode(i, args.timeout, settle)
                results.append(r)
                outcome = f"touched the {GOALS[r.goal]} target" if r.success else "no success"
                print(f"episode {i + 1}/{args.episodes}: {outcome} after {r.seconds:.1f} s ({r.chunks} chunks)",
                      flush=True)
    finally:
        if frames is not None:
            frames.close()
    summary = summarize(results)
    ms = evaluator.inference_ms
    if ms:
        summary["inference_ms"] = {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
                                   "chunks": len(ms), "backend": f"{policy.runner.backend_name}/{policy.runner.device}"}
    print(format_summary(summary, label))
    if ms:
        i = summary["inference_ms"]
        print(f"inference ({i['backend']}): p50 {i['p50']:.1f} ms, p99 {i['p99']:.1f} ms over {i['chunks']} chunks")
    if frames is not None and args.video:
        print(f"video: {args.video}")
    if frames is not None and args.strip and frames.ends:
        write_strip(frames.ends, results, Path(args.strip))
        print(f"image strip: {args.strip}")
    print(json.dumps({"sim_eval": {"model": label, **summary, "results": [asdict(r) for r in results]}}))
    return 0
