"""``dp_ros bench recorder``: the teleop recorder under realistic sensor load.

A separate process publishes 2 cameras (640x480 rgb8, 30 Hz) and 7 joints (500 Hz);
the recorder runs in this process (Joy teleop, no operator input), records one
episode at 10 Hz for --duration seconds into a temporary dataset (images stored at
240x320), and saves it. Reported: dropped ticks (target 0), ticks stored vs elapsed,
CPU use of the recorder process, bytes written per second, and the save time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from dp_ros.bench.fake_sensors import use_large_data_profile


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=180.0, help="seconds of recording")
    p.add_argument("--dt", type=float, default=0.1)
    p.add_argument("--default-transports", action="store_true",
                   help="do not use config/fastdds_large_data.xml")


def run(args: argparse.Namespace) -> int:
    if not args.default_transports:
        use_large_data_profile()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from dp_ros.dataset.store import EpisodeStore
    from dp_ros.nodes.teleop_recorder import TeleopRecorder

    joints = [f"joint_{i + 1}" for i in range(7)]
    tmp = tempfile.TemporaryDirectory(prefix="dp_ros_rec_bench_")
    path = Path(tmp.name) / "demos"
    pub = subprocess.Popen([sys.executable, "-m", "dp_ros.bench.fake_sensors", "--cameras", "camera_0,camera_1",
                            "--joint-hz", "500", "--duration", str(args.duration + 60)],
                           stdout=subprocess.PIPE, text=True, start_new_session=True)
    rclpy.init()
    rec = TeleopRecorder(parameter_overrides=[
        Parameter("dataset_path", value=str(path)), Parameter("joint_names", value=joints),
        Parameter("cameras", value=["camera_0", "camera_1"]), Parameter("dt", value=args.dt),
    ])
    ex = SingleThreadedExecutor()
    ex.add_node(rec)
    threading.Thread(target=ex.spin, daemon=True).start()
    deadline = time.monotonic() + 30
    while not rec.start_episode()[0]:
        if time.monotonic() > deadline:
            raise SystemExit("the recorder never saw fresh data from the publisher")
        time.sleep(0.2)
    ru0, t0, bytes0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), _du(path)
    time.sleep(args.duration)
    ok, msg = rec.stop_episode()
    t_stop = time.monotonic()
    while rec.status.state != "idle":
        time.sleep(0.05)
    save_s = time.monotonic() - t_stop
    ru1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    status = dict(vars(rec.status))
    os.killpg(pub.pid, signal.SIGINT)
    out, _ = pub.communicate(timeout=30)
    ex.shutdown(timeout_sec=2)
    rec.destroy_node()
    rclpy.try_shutdown()
    store = EpisodeStore.open(path)
    frames = store.n_frames
    written = _du(path) - bytes0
    cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / (t1 - t0)
    expected = int(args.duration / args.dt)
    res = {
        "duration_s": args.duration, "dt": args.dt, "ticks_expected": expected, "frames_stored": frames,
        "ticks_dropped": status["dropped"], "last_drop": status["last_drop"], "save_s": round(save_s, 2),
        "recorder_cpu_percent_of_one_core": round(cpu * 100, 1),
        "bytes_written_per_s": round(written / args.duration), "dataset_bytes": written,
        "transports": "default" if args.default_transports else "fastdds_large_data.xml",
        "publisher": json.loads(out.strip().splitlines()[-1]) if out.strip() else None,
    }
    print(f"dp_ros bench recorder: {args.duration:.0f} s at {1 / args.dt:g} Hz, 2 cameras 640x480 @ 30 Hz "
          f"(stored 240x320), joints @ 500 Hz")
    print(f"  frames stored {frames} of ~{expected} ticks; dropped ticks {status['dropped']} (target 0)"
          + (f"; last reason: {status['last_drop']}" if status["dropped"] else ""))
    print(f"  recorder CPU {res['recorder_cpu_percent_of_one_core']:.0f}% of one core (recording and saving); "
          f"written {written / 1e6:.1f} MB = {res['bytes_written_per_s'] / 1e6:.2f} MB/s; save took {save_s:.1f} s")
    print(json.dumps({"bench": "recorder", **res}))
    tmp.cleanup()
    return 0
