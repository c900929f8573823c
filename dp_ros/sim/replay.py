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

``dp_ros sim replay`` runs in lockstep simulated time (``sim.lockstep``; ``--realtime``
for the wall clock), so the same recording gives the same errors on every run.
``dp_ros replay`` drives an arm on the ROS graph and runs in real time.

With the timing convention right (docs/timing.md), the recorded timing gives the
smallest error of the three. On a real arm, a smaller error at one of the shifts says
the recording and the execution disagree by about that much (execution latency, an
offset, a controller that lags), which ``execution_latency`` and
``action_time_offset`` compensate.
"""
from __future__ import annotations

import argparse
import threading
from pathlib import Path

import numpy as np

from dp_ros.console import add_console_arguments, emit_json, quiet_console

SHIFTS = {0: "rms_error", -1: "rms_error_shift_minus1", 1: "rms_error_shift_plus1"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset directory")
    p.add_argument("--episode", type=int, default=0, help="episode index (negative counts from the end)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file ('-': print them)")
    p.add_argument("--params", default=None, help="policy node parameter file (default: the package's "
                   "config/policy.yaml)")
    p.add_argument("--action-horizon", type=int, default=8, help="T_a, actions executed per chunk (default 8)")
    p.add_argument("--n-obs-steps", type=int, default=2, help="T_o of the chunks (default 2)")
    p.add_argument("--horizon", type=int, default=16, help="T_p of the chunks (default 16)")
    add_console_arguments(p)


def add_sim_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments(p)
    p.add_argument("--realtime", action="store_true", help="run on the wall clock instead of lockstep time")


def add_real_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments(p)
    p.add_argument("--yes", action="store_true", help="do not ask before moving the arm")


def _make_observer(joint_names, use_sim_time: bool, **options):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState
    from std_srvs.srv import SetBool, Trigger

    from dp_ros.nodes.common import JointPicker, stamp_to_sec

    class ReplayObserver(Node):
        """Keeps (stamp, positions) of every /joint_states message; calls the node's services
        through ``clock`` (``sim.lockstep.Lockstep`` or ``RealTime``, set once every node exists)."""

        def __init__(self):
            super().__init__("dp_replay", parameter_overrides=[Parameter("use_sim_time", value=use_sim_time)],
                             **options)
            self.clock = None
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
            res = self.clock.call(self._enable, SetBool.Request(data=on))
            if not res.success:
                raise RuntimeError(f"/dp_policy/enable {on}: {res.message}")

        def reset(self, sim: bool) -> None:
            for client in ([self._reset_sim] if sim else []) + [self._reset]:
                res = self.clock.call(client, Trigger.Request())
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
    observer.clock.sleep(runner.config.n_obs_steps * dt + 0.1)  # a fresh observation history first
    observer.enable(True)
    target, end, before = episode["action"][0], observer.now() + 30.0, None
    while observer.now() < end:  # at the first action (as far as the arm gets) and still
        observer.clock.sleep(0.2)
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
        observer.clock.sleep(0.05)
    observer.enable(False)
    times, positions = observer.path(t0 - dt)
    return rms_error(times, positions, t0 + runner.episode_times, episode["joint_pos"])


def run(args: argparse.Namespace, sim: bool) -> int:
    with quiet_console(args, "sim_replay" if sim else "replay"):
        return _run(args, sim)


def _run(args: argparse.Namespace, sim: bool) -> int:
    from rclpy.parameter import Parameter

    from dp_ros.dataset.store import DatasetError, EpisodeStore
    from dp_ros.nodes.common import InProcessNodes
    from dp_ros.nodes.policy_node import PolicyNode
    from dp_ros.paths import package_file
    from dp_ros.runtime.replay import ReplayRunner
    from dp_ros.sim.lockstep import node_options, start_clock

    command = "dp_ros sim replay" if sim else "dp_ros replay"
    lockstep = sim and not args.realtime
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
    options = node_options(lockstep)
    with InProcessNodes(params) as ros:
        try:
            arm = None
            if sim:
                from dp_ros.sim.sim_node import SimArmNode

                arm = ros.add(SimArmNode(parameter_overrides=[Parameter("camera_rate", value=0.0),
                                                              Parameter("lockstep", value=lockstep)], **options))
            policy = ros.add(PolicyNode(runner=runner, parameter_overrides=[
                Parameter("enabled_on_start", value=False), Parameter("use_sim_time", value=lockstep)], **options))
            observer = ros.add(_make_observer(joint_names, lockstep, **options))
            clock = observer.clock = start_clock(ros.nodes, arm, lockstep)  # no arm here: real time
        except Exception as exc:
            print(f"{command}: cannot start: {exc}")
            return 2
        try:
            clock.sleep(1.0)  # discovery, the first messages
            for shift, key in SHIFTS.items():
                results[key] = _replay_once(observer, runner, policy, episode, shift, sim)
                print(f"shift {shift:+d} period: RMS joint error {results[key]:.4f} rad", flush=True)
        finally:
            clock.close()
    best = min(SHIFTS, key=lambda s: results[SHIFTS[s]])
    print(f"episode {args.episode} ({len(episode['action'])} frames, {runner.duration:.1f} s): the recorded timing "
          + ("fits best" if best == 0 else f"does not fit best: shift {best:+d} period does"))
    out = {"dataset": str(args.dataset), "episode": args.episode, "frames": len(episode["action"]), **results}
    emit_json(args.json, "replay", out)
    return 0


def run_sim(args: argparse.Namespace) -> int:
    return run(args, sim=True)


def run_real(args: argparse.Namespace) -> int:
    return run(args, sim=False)
