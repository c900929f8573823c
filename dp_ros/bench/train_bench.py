"""``dp_ros bench train``: training throughput, and whether the data loader keeps up.

For each configuration a dataset of random frames is generated (sim_small: 1 camera
96x96, 4 joints; paper_real: 2 cameras 240x320, 7 joints), then three figures in
samples per second are measured after warm-up:

- loader: the DataLoader alone (zarr reads, windows, collation) with --workers;
- compute: training steps on one batch held in memory (forward, backward, AdamW, EMA);
- pipeline: both together, as ``dp_ros train`` runs them, with the share of the step
  time spent waiting for data.

If loader throughput is well above compute throughput and the data wait is small,
the data loader is not the bottleneck.
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dp_ros.dataset.store import EpisodeStore
from dp_ros.model import build_policy
from dp_ros.model.presets import PRESETS
from dp_ros.training.sequence import SequenceDataset, fit_normalizer
from dp_ros.training.trainer import EpochBatches, _to


def _dataset(path: Path, cfg, episodes: int, length: int) -> None:
    rng = np.random.default_rng(0)
    store = EpisodeStore.create(path, cfg.joint_names, {c.name: (c.height, c.width) for c in cfg.obs.cameras}, cfg.dt)
    frames = {c.name: rng.integers(0, 256, (16, c.height, c.width, 3), dtype=np.uint8) for c in cfg.obs.cameras}
    for e in range(episodes):
        w = store.begin_episode()
        for i in range(length):
            q = rng.uniform(-1, 1, cfg.action_dim)
            w.add(float(e * 1000 + i * cfg.dt), q, q, {k: v[(e + i) % 16] for k, v in frames.items()})
        w.commit()
    store.close()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", choices=[*PRESETS, "all"], default="all")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=None, help="default 64 on a GPU, 16 on the CPU")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 50 GPU, 10 CPU)")


def run(args: argparse.Namespace) -> int:
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    bs = args.batch_size or (64 if device.type == "cuda" else 16)
    steps = args.steps or (50 if device.type == "cuda" else 10)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dp_ros_train_bench_") as tmp:
        for name in (list(PRESETS) if args.config == "all" else [args.config]):
            cfg = PRESETS[name]()
            path = Path(tmp) / name
            _dataset(path, cfg, episodes=8, length=60)
            store = EpisodeStore.open(path)
            eps = list(range(store.n_episodes))
            policy = build_policy(cfg, fit_normalizer(store, eps)).to(device)
            ema = copy.deepcopy(policy).requires_grad_(False)
            opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
            data = SequenceDataset(path, eps, cfg)
            loader = torch.utils.data.DataLoader(data, batch_sampler=EpochBatches(len(data), bs, 0, 0),
                                                 num_workers=args.workers, pin_memory=device.type == "cuda",
                                                 persistent_workers=args.workers > 0)
            it = iter(loader)
            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            amp = device.type == "cuda"

            def step(batch):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    loss = policy.compute_loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    for pe, p in zip(ema.parameters(), policy.parameters()):
                        pe.lerp_(p, 1e-3)

            for _ in range(3):
                next(it)
            t0 = time.perf_counter()
            n_load = max(steps, 10)
            for _ in range(n_load):
                next(it)
            loader_sps = n_load * bs / (time.perf_counter() - t0)
            batch = _to(next(it), device)
            for _ in range(2):
                step(batch)
            sync()
            t0 = time.perf_counter()
            for _ in range(steps):
                step(batch)
            sync()
            compute_sps = steps * bs / (time.perf_counter() - t0)
            wait = 0.0
            t0 = time.perf_counter()
            for _ in range(steps):
                tw = time.perf_counter()
                b = _to(next(it), device)
                wait += time.perf_counter() - tw
                step(b)
            sync()
            total = time.perf_counter() - t0
            rows.append({"config": name, "device": str(device), "batch_size": bs, "workers": args.workers,
                         "params": sum(p.numel() for p in policy.parameters()),
                         "loader_samples_per_s": round(loader_sps, 1), "compute_samples_per_s": round(compute_sps, 1),
                         "pipeline_samples_per_s": round(steps * bs / total, 1),
                         "data_wait_fraction": round(wait / total, 3)})
            store.close()
            del it, loader
    print(f"dp_ros bench train  torch {torch.__version__}  threads {torch.get_num_threads()}")
    print(f"{'config':<11} {'device':<6} {'batch':>5} {'loader':>10} {'compute':>10} {'pipeline':>10} {'data wait':>10}")
    for r in rows:
        print(f"{r['config']:<11} {r['device']:<6} {r['batch_size']:>5} {r['loader_samples_per_s']:>10.1f} "
              f"{r['compute_samples_per_s']:>10.1f} {r['pipeline_samples_per_s']:>10.1f} {r['data_wait_fraction']:>9.1%}")
    print("samples per second; loader = DataLoader alone, compute = steps on a batch in memory")
    print(json.dumps({"bench": "train", "results": rows}))
    return 0
