"""``dp_ros bench node``: the policy node's own cost under realistic sensor load.

A separate process publishes 2 cameras (640x480 rgb8, 30 Hz) and joint states
(500 Hz); the node runs in this process with the paper's real-world model (random
weights, PyTorch on the CPU unless --device says otherwise), enabled, for --duration
seconds. Reported:

- node overhead per chunk: (publish time - chunk start) - inference time, that is
  window + frame decoding and resizing + scheduling + safety filter + publishing;
- observation stamp to publish (includes the age of the newest frame at chunk start
  and the inference);
- sensor callback cost (time inside the image and joint-state callbacks);
- callback lag (callback time - header stamp) in the first and last third of the run:
  if a queue grew, the lag grows; and messages received vs sent.
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

import numpy as np

from dp_ros.bench.fake_sensors import use_large_data_profile


def _pct(x, q):
    return round(float(np.percentile(x, q)), 3) if len(x) else float("nan")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=60.0, help="seconds of measurement after warm-up")
    p.add_argument("--model", default="", help="checkpoint (default: paper_real with random weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--denoiser", choices=["unet", "transformer"], default="unet",
                   help="denoiser of the paper_real model (ignored with --model)")
    p.add_argument("--joint-hz", type=float, default=500.0)
    p.add_argument("--camera-hz", type=float, default=30.0)
    p.add_argument("--default-transports", action="store_true",
                   help="do not use config/fastdds_large_data.xml (raw 640x480 frames are then mostly lost)")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from dp_ros.model import build_policy, save_checkpoint
    from dp_ros.model.presets import paper_real, placeholder_normalizer
    from dp_ros.nodes.policy_node import PolicyNode, stamp_to_sec

    if not args.default_transports:
        use_large_data_profile()
    tmp = tempfile.TemporaryDirectory(prefix="dp_ros_bench_")
    if args.model:
        model = args.model
    else:
        cfg = paper_real(args.denoiser)
        model = str(save_checkpoint(build_policy(cfg, placeholder_normalizer(cfg, -0.3, 0.3)), Path(tmp.name) / "m"))
    from dp_ros.model.checkpoint import read_config

    cfg, _, _ = read_config(model)
    cams = [c.name for c in cfg.obs.cameras]
    total = args.duration + 5.0
    pub = subprocess.Popen(
        [sys.executable, "-m", "dp_ros.bench.fake_sensors", "--cameras", ",".join(cams),
         "--joints", ",".join(cfg.joint_names), "--joint-hz", str(args.joint_hz),
         "--camera-hz", str(args.camera_hz), "--duration", str(total + 10)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    rclpy.init()
    node = PolicyNode(parameter_overrides=[
        Parameter("model_path", value=model), Parameter("device", value=args.device),
        Parameter("enabled_on_start", value=True), Parameter("max_joint_speed", value=10.0),
    ])
    cb = {"image": [], "joint": []}
    lag = {"image": [], "joint": []}  # (wall time, lag seconds)
    lock = threading.Lock()
    on_joint = node._on_joint_state

    def timed(kind, fn):
        def wrapper(*a):
            msg = a[-1]
            t = time.perf_counter()
            fn(*a)
            d = time.perf_counter() - t
            now = node.get_clock().now().nanoseconds * 1e-9
            with lock:
                cb[kind].append(d)
                lag[kind].append((time.monotonic(), now - stamp_to_sec(msg.header.stamp)))
        return wrapper

    # Instrument the callbacks the subscriptions call (they were bound at creation).
    for sub in node.subscriptions:
        if sub.topic_name.endswith("image_raw") or sub.topic_name.endswith("compressed"):
            orig = sub.callback
            sub.callback = timed("image", lambda m, orig=orig: orig(m))
        elif sub.topic_name == "/joint_states":
            sub.callback = timed("joint", on_joint)
    statuses = []
    node.create_subscription(String, "~/status", lambda m: statuses.append(json.loads(m.data)), 100)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    time.sleep(5.0)  # warm-up: discovery, first chunks
    with lock:
        for v in (*cb.values(), *lag.values()):
            v.clear()
    statuses.clear()
    ru0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    time.sleep(args.duration)
    ru1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    counts = node._planner.buffer.counts()
    os.killpg(pub.pid, signal.SIGINT)
    out, _ = pub.communicate(timeout=30)
    sent = json.loads(out.strip().splitlines()[-1])["sent"] if out.strip() else {}
    ex.shutdown(timeout_sec=2)
    node.destroy_node()
    rclpy.try_shutdown()

    pubd = [s for s in statuses if s["state"] == "published"]
    overhead = [((s["t_published"] - s["t_start"]) - s["inference_ms"] / 1e3) * 1e3 for s in pubd]
    stamp_to_pub = [(s["t_published"] - s["t_obs"]) * 1e3 for s in pubd]
    infer = [s["inference_ms"] for s in pubd]
    prep = [s["prep_ms"] for s in pubd]
    states = {k: sum(1 for s in statuses if s["state"] == k) for k in {s["state"] for s in statuses}}
    cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / (w1 - w0)

    def thirds(kind):
        xs = sorted(lag[kind])
        if not xs:
            return (float("nan"),) * 4
        t_lo, t_hi = xs[0][0] + (xs[-1][0] - xs[0][0]) / 3, xs[-1][0] - (xs[-1][0] - xs[0][0]) / 3
        first = [l * 1e3 for t, l in xs if t <= t_lo]
        last = [l * 1e3 for t, l in xs if t >= t_hi]
        return _pct(first, 50), _pct(first, 99), _pct(last, 50), _pct(last, 99)

    res = {
        "duration_s": args.duration,
        "device": args.device,
        "model": args.model or f"paper_real/{args.denoiser}",
        "transports": "default" if args.default_transports else "fastdds_large_data.xml",
        "chunks": states,
        "overhead_ms": {"p50": _pct(overhead, 50), "p99": _pct(overhead, 99), "max": _pct(overhead, 100)},
        "prep_ms": {"p50": _pct(prep, 50), "p99": _pct(prep, 99)},
        "inference_ms": {"p50": _pct(infer, 50), "p99": _pct(infer, 99)},
        "stamp_to_publish_ms": {"p50": _pct(stamp_to_pub, 50), "p99": _pct(stamp_to_pub, 99)},
        "image_callback_ms": {"p50": _pct(np.array(cb["image"]) * 1e3, 50), "p99": _pct(np.array(cb["image"]) * 1e3, 99)},
        "joint_callback_ms": {"p50": _pct(np.array(cb["joint"]) * 1e3, 50), "p99": _pct(np.array(cb["joint"]) * 1e3, 99)},
        "image_lag_ms_first_last_third": thirds("image"),
        "joint_lag_ms_first_last_third": thirds("joint"),
        "received": {k: v[0] for k, v in counts.items()},
        "sent": sent,
        "node_cpu_percent_of_one_core": round(cpu * 100, 1),
    }
    img_lag, j_lag = res["image_lag_ms_first_last_third"], res["joint_lag_ms_first_last_third"]
    backlog = bool(img_lag[3] > 2 * img_lag[1] + 5 or j_lag[3] > 2 * j_lag[1] + 5)
    res["backlog"] = backlog
    print(f"dp_ros bench node: {args.duration:.0f} s, 2 cameras 640x480 @ {args.camera_hz:g} Hz, "
          f"joints @ {args.joint_hz:g} Hz, model {f'paper_real {args.denoiser} (random weights)' if not args.model else model}, "
          f"device {args.device}, transports "
          f"{'Fast DDS defaults' if args.default_transports else 'config/fastdds_large_data.xml'}")
    print(f"  chunks: {states}")
    print(f"  node overhead (publish - start - inference): p50 {res['overhead_ms']['p50']:.2f} ms, "
          f"p99 {res['overhead_ms']['p99']:.2f} ms, max {res['overhead_ms']['max']:.2f} ms  (target p99 <= 5 ms)")
    print(f"    of which window + decode + resize: p50 {res['prep_ms']['p50']:.2f} ms, p99 {res['prep_ms']['p99']:.2f} ms")
    print(f"  inference: p50 {res['inference_ms']['p50']:.1f} ms, p99 {res['inference_ms']['p99']:.1f} ms")
    print(f"  observation stamp -> publish: p50 {res['stamp_to_publish_ms']['p50']:.1f} ms, "
          f"p99 {res['stamp_to_publish_ms']['p99']:.1f} ms")
    print(f"  image callback: p50 {res['image_callback_ms']['p50']:.3f} ms, p99 {res['image_callback_ms']['p99']:.3f} ms; "
          f"joint callback: p50 {res['joint_callback_ms']['p50']:.3f} ms, p99 {res['joint_callback_ms']['p99']:.3f} ms")
    print(f"  callback lag p50/p99, first third -> last third: images {img_lag[0]:.1f}/{img_lag[1]:.1f} -> "
          f"{img_lag[2]:.1f}/{img_lag[3]:.1f} ms; joints {j_lag[0]:.1f}/{j_lag[1]:.1f} -> {j_lag[2]:.1f}/{j_lag[3]:.1f} ms")
    print(f"  received {res['received']} of sent {sent}; backlog: {'YES' if backlog else 'no'}; "
          f"node process CPU {res['node_cpu_percent_of_one_core']:.0f}% of one core")
    print(json.dumps({"bench": "node", **res}))
    tmp.cleanup()
    return 0
