"""``dp_ros bench model``: parameter counts and chunk latency of the PyTorch policy.

For each configuration: the encoder (all cameras and state of T_o steps -> the
conditioning), one denoiser step, and the whole chunk (encode + N DDIM steps +
unnormalize), each timed separately after warm-up, p50 and p99 in milliseconds.
Random weights: latency does not depend on the values.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Callable

import numpy as np
import torch

from dp_ros.model.policy import DiffusionPolicy, build_policy
from dp_ros.model.presets import PRESETS, example_window, placeholder_normalizer, with_denoiser


def _timeit(fn: Callable[[], object], n: int, sync: Callable[[], None]) -> np.ndarray:
    times = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn()
        sync()
        times[i] = time.perf_counter() - t0
    return times * 1e3


def _warm_up(fn: Callable[[], object], n: int, sync: Callable[[], None], min_seconds: float = 1.0) -> None:
    """At least ``n`` repetitions and ``min_seconds``: the first figure measured must
    not pay for allocator growth and CPU frequency ramp-up."""
    t_end = time.perf_counter() + min_seconds
    i = 0
    while i < n or time.perf_counter() < t_end:
        fn()
        sync()
        i += 1


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def random_obs(policy, device) -> dict[str, torch.Tensor]:
    """A batch of one random observation window on ``device``."""
    window = example_window(policy.config, np.random.default_rng(0))
    return {k: torch.as_tensor(v, dtype=torch.uint8 if v.dtype == np.uint8 else torch.float32)[None].to(device)
            for k, v in window.items()}  # (T_o, ...) -> (1, T_o, ...)


def bench_config(name: str, denoiser: str, device: str, chunks: int, warmup: int,
                 warmup_seconds: float = 1.0) -> dict:
    cfg = with_denoiser(PRESETS[name](), denoiser)
    policy = build_policy(cfg, placeholder_normalizer(cfg)).to(device).eval()
    assert isinstance(policy, DiffusionPolicy)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    obs = random_obs(policy, device)
    plan = policy.plan()
    noise = policy.initial_noise(1)
    with torch.inference_mode():
        cond = policy.encode(obs)
        k = plan.timesteps[0].expand(1)
        encode = lambda: policy.encode(obs)  # noqa: E731
        step = lambda: policy.denoiser(noise, k, cond)  # noqa: E731
        chunk = lambda: policy.sample(obs, noise=noise)  # noqa: E731
        for fn in (encode, step, chunk):
            _warm_up(fn, warmup, sync, warmup_seconds)
        t_enc = _timeit(encode, chunks, sync)
        t_step = _timeit(step, chunks, sync)
        t_chunk = _timeit(chunk, chunks, sync)

    def pct(t: np.ndarray) -> dict:
        return {"p50_ms": round(float(np.percentile(t, 50)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3)}

    return {
        "config": name,
        "denoiser": denoiser,
        "device": device,
        "params_total": _count(policy),
        "params_encoder": _count(policy.obs_encoder),
        "params_denoiser": _count(policy.denoiser),
        "ddim_steps": plan.num_steps,
        "chunks": chunks,
        "encoder": pct(t_enc),
        "denoise_step": pct(t_step),
        "chunk": pct(t_chunk),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", choices=[*PRESETS, "all"], default="all", help="model configuration")
    p.add_argument("--denoiser", choices=["unet", "transformer", "all"], default="unet")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda when present)")
    p.add_argument("--chunks", type=int, default=None,
                   help="timed repetitions per figure (default 200 on a GPU, 50 on the CPU)")
    p.add_argument("--warmup", type=int, default=5,
                   help="untimed repetitions before each figure")
    p.add_argument("--warmup-seconds", type=float, default=1.0,
                   help="keep warming up until this much time has passed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def run(args: argparse.Namespace) -> int:
    devices = [args.device]
    if args.device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    elif args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device is available to torch")
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = list(PRESETS) if args.config == "all" else [args.config]
    denoisers = ["unet", "transformer"] if args.denoiser == "all" else [args.denoiser]
    results = []
    for device in devices:
        n = args.chunks or (200 if device.startswith("cuda") else 50)
        for name in configs:
            for den in denoisers:
                results.append(bench_config(name, den, device, n, args.warmup, args.warmup_seconds))
    env = {
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    print(f"dp_ros bench model  torch {env['torch']}  threads {env['cpu_threads']}  gpu {env['gpu']}")
    head = f"{'config':<11} {'denoiser':<11} {'device':<6} {'params':>8} {'enc p50':>8} {'enc p99':>8} " \
           f"{'step p50':>8} {'step p99':>8} {'chunk p50':>9} {'chunk p99':>9} {'n':>4}"
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['config']:<11} {r['denoiser']:<11} {r['device']:<6} {r['params_total'] / 1e6:>7.1f}M "
              f"{r['encoder']['p50_ms']:>8.2f} {r['encoder']['p99_ms']:>8.2f} "
              f"{r['denoise_step']['p50_ms']:>8.2f} {r['denoise_step']['p99_ms']:>8.2f} "
              f"{r['chunk']['p50_ms']:>9.2f} {r['chunk']['p99_ms']:>9.2f} {r['chunks']:>4}")
    print("times in ms; chunk = encoder + %s DDIM steps + unnormalize" % results[0]["ddim_steps"])
    print(json.dumps({"bench": "model", "env": env, "results": results}))
    return 0
