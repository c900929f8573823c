"""Replay a recorded episode's actions open loop through the policy node, and measure.

    dp_ros sim replay --dataset DIR [--episode N] [--json FILE]     # on the simulated arm
    dp_ros replay --dataset DIR [--episode N] [--json FILE]         # on your arm (ROS graph)

The policy node runs with ``runtime.replay.ReplayRunner`` in place of a model: every
chunk is scheduled, latency-compensated, safety-filtered and sent to the controller by
the node's own code, from the recorded actions instead of denoised ones. For each of
three timings (as recorded, every action one period earlier, one period later) the arm
is first brought to the episode's first action, then the episode plays from t0, and
the joint positions on /joint_states are compared with the recorded ones at the same
episode times: the RMS error over joints and frames, in radians.

With the timing convention right (docs/timing.md), the recorded timing gives the
smallest error of the three. On a real arm, a smaller error at one of the shifts says
the recording and the execution disagree by about that much (execution latency, an
offset, a controller that lags), which ``execution_latency`` and
``action_time_offset`` compensate.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np

SHIFTS = {0: "rms_error", -1: "rms_error_shift_minus1", 1: "rms_error_shift_plus1"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset directory")
    p.add_argument("--episode", type=int, default=0, help="episode index (negative counts from the end)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--params", default=None, help="policy node parameter file (default: the package's "
                   "config/policy.yaml)")
    p.add_argument("--action-horizon", type=int, default=8, help="T_a, actions executed per chunk (default 8)")
    p.add_argument("--n-obs-steps", type=int, default=2, help="T_o of the chunks (default 2)")
    p.add_argument("--horizon", type=int, default=16, help="T_p of the chunks (default 16)")


def add_real_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments(p)
    p.add_argument("--yes", action="store_true", help="do not ask before moving the arm")


def _make_observer(joint_names):
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState
    from std_srvs.srv import SetBool, Trigger

    from dp_ros.nodes.common import JointPicker, call_service, stamp_to_sec

    class ReplayObserver(Node):
        """Keeps (stamp, positions) of every /joint_states message; calls the node's services."""

        def __init__(self):
            super().__init__("dp_replay")
            self._picker = JointPicker(joint_names)
            self._lock = threading.Lock()
            self.samples: list[tuple[float, np.ndarray]] = []
            self.create_subscription(JointState, "/joint_states", self._on_joints, qos_profile_sensor_data)
            self._enable = self.create_client(SetBool, "/dp_policy/enable")
            self._reset = self.create_client(Trigger, "/dp_policy/reset")
            self._reset_sim = self.create_client(Trigger, "/sim_arm/reset")

        def _on_joints(self, msg) -> None:
            q, _ = self._picker.pick(msg.name, msg.position)
            if q is not None:
                with self._lock:
                    self.samples.append((stamp_to_sec(msg.header.stamp), q))

        def path(self, since: float) -> tuple[np.ndarray, np.ndarray]:
            with self._lock:
                got = [(t, q) for t, q in self.samples if t >= since]
            return np.array([t for t, _ in got]), np.array([q for _, q in got])

        def latest(self) -> np.ndarray | None:
            with self._lock:
                return self.samples[-1][1] if self.samples else None

        def now(self) -> float:
            return self.get_clock().now().nanoseconds * 1e-9

        def enable(self, on: bool) -> None:
            res = call_service(self._enable, SetBool.Request(data=on))
            if not res.success:
                raise RuntimeError(f"/dp_policy/enable {on}: {res.message}")

        def reset(self, sim: bool) -> None:
            for client in ([self._reset_sim] if sim else []) + [self._reset]:
                res = call_service(client, Trigger.Request())
                if not res.success:
                    raise RuntimeError(f"{client.srv_name}: {res.message}")

    return ReplayObserver()


def _replay_once(observer, runner, policy, episode: dict, shift: int, sim: bool) -> float:
    """Bring the arm to the first action, play the episode shifted by ``shift`` periods; the RMS error."""
    from dp_ros.core.motion import rms_error

    dt = runner.config.dt
    observer.enable(False)
    runner.stop()  # hold the first action
    observer.reset(sim)
    observer.enable(True)
    target, end, before = episode["action"][0], time.monotonic() + 30.0, None
    while time.monotonic() < end:  # at the first action (as far as the arm gets) and still
        time.sleep(0.2)
        q = observer.latest()
        if q is not None and before is not None and np.max(np.abs(q - before)) < 1e-3 \
                and np.max(np.abs(q - target)) < 0.05:
            break
        before = q
    else:
        raise RuntimeError(f"the arm did not settle at the episode's first action {np.round(target, 3).tolist()} "
                           "within 30 s")
    period = float(policy.get_parameter("inference_period").value) or runner.config.n_action_steps * dt
    t0 = observer.now() + period + 2 * dt  # chunks planned before this call hold the start until t0
    runner.start(t0, shift)
    while observer.now() < t0 + runner.duration + 2 * dt:
        time.sleep(0.05)
    observer.enable(False)
    times, positions = observer.path(t0 - dt)
    return rms_error(times, positions, t0 + runner.episode_times, episode["joint_pos"])


def run(args: argparse.Namespace, sim: bool = True) -> int:
    from rclpy.parameter import Parameter

    from dp_ros.dataset.store import DatasetError, EpisodeStore
    from dp_ros.nodes.common import InProcessNodes
    from dp_ros.nodes.policy_node import PolicyNode
    from dp_ros.paths import package_file
    from dp_ros.runtime.replay import ReplayRunner

    command = "dp_ros sim replay" if sim else "dp_ros replay"
    try:
        with EpisodeStore.open(args.dataset) as store:
            episode = {k: np.asarray(v) for k, v in store.episode(args.episode).items() if k in
                       ("joint_pos", "action", "timestamp")}
            joint_names, dt = store.joint_names, store.dt
        runner = ReplayRunner(episode["action"], episode["timestamp"], joint_names, dt,
                              f"{args.dataset}#{args.episode}", args.n_obs_steps, args.horizon, args.action_horizon)
    except (DatasetError, ValueError) as exc:
        print(f"{command}: {exc}")
        return 2
    if not sim and not args.yes:
        answer = input(f"This moves the arm to episode {args.episode}'s first joint positions and replays its "
                       f"{runner.duration:.1f} s three times. Keep a hand on the e-stop. Go? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    params = [Path(args.params) if args.params else package_file("config", "policy.yaml")]
    if sim:
        params.append(package_file("config", "sim.yaml"))
    results = {}
    with InProcessNodes(params) as ros:
        try:
            if sim:
                from dp_ros.sim.sim_node import SimArmNode

                ros.add(SimArmNode(parameter_overrides=[Parameter("camera_rate", value=0.0)]))
            policy = ros.add(PolicyNode(runner=runner, parameter_overrides=[
                Parameter("enabled_on_start", value=False)]))
            observer = ros.add(_make_observer(joint_names))
        except Exception as exc:
            print(f"{command}: cannot start: {exc}")
            return 2
        ros.spin()
        time.sleep(1.0)  # discovery, the first messages
        for shift, key in SHIFTS.items():
            results[key] = _replay_once(observer, runner, policy, episode, shift, sim)
            print(f"shift {shift:+d} period: RMS joint error {results[key]:.4f} rad", flush=True)
    best = min(SHIFTS, key=lambda s: results[SHIFTS[s]])
    print(f"episode {args.episode} ({len(episode['action'])} frames, {runner.duration:.1f} s): the recorded timing "
          + ("fits best" if best == 0 else f"does not fit best: shift {best:+d} period does"))
    out = {"dataset": str(args.dataset), "episode": args.episode, "frames": len(episode["action"]), **results}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def run_real(args: argparse.Namespace) -> int:
    return run(args, sim=False)
