"""``dp_ros bench backends``: chunk latency of every available backend, one run.

Every backend is timed the same way, through its ``predict`` (observation window in,
joint-unit actions out, host to host): whole chunks with the configured K DDIM steps,
and with 1 step. The time per denoising step is (t_K - t_1) / (K - 1) on the p50s and
the encoder is what is left of t_1, which also works for backends that replay a whole
chunk as one CUDA graph. Speed-ups are against eager PyTorch FP32 on the same device,
measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dp_ros.model import build_policy, save_checkpoint
from dp_ros.model.presets import PRESETS, example_window, placeholder_normalizer, with_denoiser
from dp_ros.runtime.backends import BackendUnavailable, load_runner


# label -> (backend, constructor options); the rows of the table, fastest first
VARIANTS = {
    "tensorrt": ("tensorrt", {}),
    "tensorrt_fp32": ("tensorrt", {"precision": "fp32"}),
    "cuda_graph+compile": ("cuda_graph", {"compile": True}),
    "cuda_graph": ("cuda_graph", {"compile": False}),
    "onnxruntime": ("onnxruntime", {}),
    "pytorch": ("pytorch", {}),
}


def _times(runner, obs, noise, steps, n, warmup):
    for _ in range(warmup):
        runner.backend.predict(obs, steps, noise)
    t = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        runner.backend.predict(obs, steps, noise)
        t[i] = time.perf_counter() - t0
    return t * 1e3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", choices=[*PRESETS, "all"], default="all")
    p.add_argument("--denoiser", choices=["unet", "transformer"], default="unet")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    p.add_argument("--backends", default="all",
                   help=f"comma-separated, from {', '.join(VARIANTS)}; or all (every one available)")
    p.add_argument("--chunks", type=int, default=None, help="timed chunks per figure (default 200 GPU, 50 CPU)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--compare-unrolled", action="store_true",
                   help="also time the DDIM loop unrolled into one ONNX graph (ONNX Runtime), vs the loop")


def _unrolled(ckpt, cfg, obs, noise, device, n, warmup):
    """Encoder + K DDIM steps + unnormalize as one ONNX graph, timed in ONNX Runtime."""
    import contextlib
    import io

    import onnxruntime as ort

    from dp_ros.model import load_checkpoint
    from dp_ros.runtime.export import EncoderGraph, example_inputs, input_names

    policy = load_checkpoint(ckpt)
    plan = policy.plan()

    class Unrolled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.policy = EncoderGraph(policy), policy

        def forward(self, *args):
            *obs_in, x = args
            cond = self.enc(*obs_in)
            for i in range(plan.num_steps):
                x = plan.step(i, x, self.policy.denoiser(x, plan.timesteps[i].float().expand(1), cond))
            return self.policy.unnormalize_action(x)

    enc_in, _ = example_inputs(policy)
    path = Path(ckpt) / ".build" / "unrolled.onnx"
    path.parent.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(Unrolled().eval(), (*enc_in, torch.zeros(1, cfg.horizon, cfg.action_dim)), str(path),
                          input_names=[*input_names(cfg), "noise"], output_names=["actions"], dynamo=True,
                          external_data=False)
    export_s = time.perf_counter() - t0
    providers = ["CUDAExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=providers)
    keys = [c.name for c in cfg.obs.cameras] + [k.name for k in cfg.obs.lowdim]
    feeds = {name: np.ascontiguousarray(np.asarray(obs[key])[None]).astype(
        np.uint8 if name.startswith("image_") else np.float32) for name, key in zip(input_names(cfg), keys)}
    feeds["noise"] = noise[None].astype(np.float32)
    for _ in range(warmup):
        sess.run(None, feeds)
    t = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        t[i] = time.perf_counter() - t0
    return {"chunk_p50_ms": round(float(np.percentile(t * 1e3, 50)), 3), "export_s": round(export_s, 1),
            "onnx_mb": round(path.stat().st_size / 1e6, 1)}


def run(args: argparse.Namespace) -> int:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    names = list(VARIANTS) if args.backends == "all" else args.backends.split(",")
    n = args.chunks or (200 if device.startswith("cuda") else 50)
    configs = list(PRESETS) if args.config == "all" else [args.config]
    rows, skipped, unrolled = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="dp_ros_bench_") as tmp:
        for cfg_name in configs:
            cfg = with_denoiser(PRESETS[cfg_name](), args.denoiser)
            torch.manual_seed(0)
            ckpt = save_checkpoint(build_policy(cfg, placeholder_normalizer(cfg)), Path(tmp) / cfg_name)
            rng = np.random.default_rng(0)
            obs = example_window(cfg, rng)
            noise = rng.standard_normal((cfg.horizon, cfg.action_dim)).astype(np.float32)
            k = cfg.noise.num_inference_steps
            ref = None
            for name in names:
                backend, options = VARIANTS.get(name, (name, {}))
                try:
                    t0 = time.perf_counter()
                    runner = load_runner(ckpt, backend, device, **options)
                    runner.backend.predict(obs, k, noise)  # builds, compiles, captures
                    ready_s = time.perf_counter() - t0
                except BackendUnavailable as exc:
                    skipped[name] = str(exc)
                    continue
                t_k = _times(runner, obs, noise, k, n, args.warmup)
                t_1 = _times(runner, obs, noise, 1, n, args.warmup)
                out = runner.backend.predict(obs, k, noise)
                p50_k, p50_1 = float(np.percentile(t_k, 50)), float(np.percentile(t_1, 50))
                step = (p50_k - p50_1) / (k - 1) if k > 1 else float("nan")
                row = {
                    "config": cfg_name, "backend": name, "device": device, "chunks": n, "ddim_steps": k,
                    "encoder_ms": round(p50_1 - step, 3), "step_ms": round(step, 3),
                    "chunk_p50_ms": round(p50_k, 3), "chunk_p99_ms": round(float(np.percentile(t_k, 99)), 3),
                    "ready_s": round(ready_s, 1),
                }
                if name == "pytorch":
                    ref = (out, p50_k)
                rows.append((row, out))
            ort_rows = [r for r, _ in rows if r["config"] == cfg_name and r["backend"] == "onnxruntime"]
            if args.compare_unrolled and ort_rows:  # ONNX Runtime ran: compare its loop with the unrolled graph
                unrolled[cfg_name] = {"loop_chunk_p50_ms": ort_rows[0]["chunk_p50_ms"],
                                      **_unrolled(ckpt, cfg, obs, noise, device, n, args.warmup)}
            for row, out in rows:
                if row["config"] == cfg_name and ref is not None:
                    row["speedup_vs_pytorch_fp32"] = round(ref[1] / row["chunk_p50_ms"], 2)
                    row["max_abs_diff_vs_pytorch"] = float(np.max(np.abs(out - ref[0])))
    results = [r for r, _ in rows]
    env = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if device.startswith("cuda")
           else (platform.processor() or platform.machine()), "cpu_threads": torch.get_num_threads()}
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    print(f"dp_ros bench backends  {env}")
    head = (f"{'config':<11} {'backend':<18} {'device':<6} {'encoder':>9} {'per step':>9} {'chunk p50':>10} "
            f"{'chunk p99':>10} {'speedup':>8} {'max diff':>9} {'ready':>7}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['config']:<11} {r['backend']:<18} {r['device']:<6} {r['encoder_ms']:>9.2f} {r['step_ms']:>9.3f} "
              f"{r['chunk_p50_ms']:>10.2f} {r['chunk_p99_ms']:>10.2f} "
              f"{r.get('speedup_vs_pytorch_fp32', float('nan')):>7.2f}x "
              f"{r.get('max_abs_diff_vs_pytorch', float('nan')):>9.2e} {r['ready_s']:>6.1f}s")
    print(f"ms, over {n} chunks after {args.warmup} warm-up; max diff: joint units, same noise, vs pytorch fp32; "
          "ready: load, build or compile, and the first chunk")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    for cfg_name, u in unrolled.items():
        print(f"{cfg_name}: onnxruntime DDIM loop around a one-step graph {u['loop_chunk_p50_ms']:.2f} ms vs "
              f"unrolled into one graph {u['chunk_p50_ms']:.2f} ms (export {u['export_s']} s, {u['onnx_mb']} MB)")
    print(json.dumps({"bench": "backends", "env": env, "results": results, "skipped": skipped,
                      "unrolled": unrolled}))
    return 0
