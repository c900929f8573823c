"""``dp_ros train``: a recorded dataset in, a deployable checkpoint out.

    runs/NAME/
      config.yaml                 the resolved model and training settings
      checkpoints/step_0002000/   model checkpoint (EMA weights: what gets deployed)
                  train_state/    weights, EMA, optimizer, scheduler, RNG, step (no pickles)
      model/                      the final EMA checkpoint (load it with the policy node)
      history.json, loss.png      losses, validation loss and action error

AdamW, linear warm-up then cosine decay, an EMA of the weights (the reference's
schedule: decay = 1 - (1 + step)^-power, capped), random-crop augmentation (inside
the model), bf16 autocast on a GPU, DataLoader workers, validation on held-out
episodes, resume from the newest checkpoint (step, optimizer, EMA, RNG). Batches are
a seeded permutation per epoch, so a resumed run draws exactly the batches the
uninterrupted run would have. Multi-GPU: ``torchrun --nproc_per_node=N -m dp_ros.cli
train ...`` (DistributedDataParallel; each rank takes its share of every batch).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file

from dp_ros.dataset.store import EpisodeStore
from dp_ros.model import build_policy, save_checkpoint
from dp_ros.model.config import CameraConfig, PolicyConfig, _from_plain
from dp_ros.training.sequence import SequenceDataset, check_dataset, fit_normalizer, split_episodes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20000
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.95, 0.999)
    warmup_steps: int = 500
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    val_ratio: float = 0.1
    val_every: int = 1000
    val_batches: int = 4
    checkpoint_every: int = 2000
    keep_checkpoints: int = 3
    num_workers: int = 2
    seed: int = 42
    mixed_precision: bool = True
    device: str = "auto"
    exclude_episodes: tuple[int, ...] = ()  # episodes not to train or validate on (bad demonstrations)

    def validate(self) -> "TrainConfig":
        for name in ("steps", "batch_size", "val_every", "val_batches", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"training.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_steps < 0 or self.num_workers < 0:
            raise ValueError("training.lr must be > 0; weight_decay, warmup_steps and num_workers >= 0")
        if not 0.0 <= self.val_ratio < 1.0:
            raise ValueError(f"training.val_ratio {self.val_ratio} must be in [0, 1)")
        if not 0.0 < self.ema_max_decay < 1.0:
            raise ValueError(f"training.ema_max_decay {self.ema_max_decay} must be in (0, 1)")
        return self


MODEL_KEYS = {"n_obs_steps", "horizon", "n_action_steps", "head", "denoiser", "regression_net", "vision", "unet",
              "transformer", "noise", "crop_ratio", "cameras", "states"}


def load_run_config(path: str | Path | None) -> tuple[dict[str, Any], TrainConfig]:
    """(model section, training settings) from a YAML file like config/train.yaml."""
    raw = yaml.safe_load(Path(path).read_text()) if path else {}
    raw = raw or {}
    unknown = sorted(set(raw) - {"model", "training"})
    if unknown:
        raise ValueError(f"{path}: unknown sections {unknown}; expected 'model' and 'training'")
    model = dict(raw.get("model") or {})
    bad = sorted(set(model) - MODEL_KEYS)
    if bad:
        raise ValueError(f"{path}: unknown model keys {bad}; known: {sorted(MODEL_KEYS)}")
    train = _from_plain(TrainConfig, dict(raw.get("training") or {}), "training")
    return model, train.validate()


def policy_config_for(store: EpisodeStore, model: Mapping[str, Any]) -> PolicyConfig:
    """The policy the dataset implies (joints, cameras and sizes, state keys, dt) with the
    model section's choices. ``cameras`` and ``states`` (lists of names; absent or null:
    all of the dataset's) choose what the policy observes besides the joint positions."""
    ratio = float(model.get("crop_ratio", 0.9))
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"model.crop_ratio {ratio} must be in (0, 1]")
    chosen = {}
    for key, available in (("cameras", list(store.camera_names)), ("states", list(store.state_dims))):
        names = model.get(key)
        names = available if names is None else names
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"model.{key} must be a list of names (or null for all of the dataset's {available})")
        unknown = [n for n in names if n not in available]
        if unknown:
            raise ValueError(f"model.{key} names {unknown}, which the dataset does not have (it has {available})")
        chosen[key] = list(dict.fromkeys(names))
    cams = tuple(CameraConfig(c, h, w, max(32, int(round(h * ratio))), max(32, int(round(w * ratio))))
                 for c, (h, w) in store.image_shapes.items() if c in chosen["cameras"])
    plain = {k: v for k, v in model.items() if k not in ("crop_ratio", "cameras", "states")}
    lowdim = [{"name": "joint_pos", "dim": len(store.joint_names)}]
    lowdim += [{"name": k, "dim": store.state_dims[k]} for k in chosen["states"]]
    plain.update(joint_names=list(store.joint_names), dt=store.dt,
                 obs={"cameras": [dataclasses.asdict(c) for c in cams], "lowdim": lowdim})
    return PolicyConfig.from_dict(plain).validate()


class _LossModule(torch.nn.Module):
    """forward(batch) = policy.compute_loss(batch), so DDP sees a forward call."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, batch):
        return self.policy.compute_loss(batch)


class EpochBatches(torch.utils.data.Sampler):
    """Batches of a seeded permutation per epoch, starting at a given step; each rank
    takes every world-th item of each batch. Batch k is a pure function of k."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, rank: int = 0, world: int = 1):
        self.n, self.bs, self.seed, self.start, self.rank, self.world = n, batch_size, seed, start_step, rank, world
        self.per_epoch = max(n // batch_size, 1)

    def batch(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.per_epoch)
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
        idx = perm[k * self.bs:(k + 1) * self.bs]
        if len(idx) < self.bs:  # fewer windows than one batch: sample with wrap-around
            idx = perm[torch.arange(k * self.bs, (k + 1) * self.bs) % self.n]
        return idx[self.rank::self.world].tolist()

    def __iter__(self):
        step = self.start
        while True:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:  # endless; DataLoader only needs it to exist
        return 2 ** 62


def lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def ema_decay(step: int, power: float, max_decay: float) -> float:
    return min(max(1.0 - (1.0 + step) ** -power, 0.0), max_decay)


def _to(batch, device):
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch.to(device, non_blocking=True)


# ---- training state: safetensors + JSON, never pickles ----

def save_train_state(d: Path, model, ema, opt, sched, step: int) -> None:
    d.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(d / "model.safetensors"))
    save_file({k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()}, str(d / "ema.safetensors"))
    osd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in osd["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{name}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{name}"] = v
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(tensors, str(d / "optimizer.safetensors"))
    save_file(rng, str(d / "rng.safetensors"))
    np_state = np.random.get_state()
    (d / "state.json").write_text(json.dumps({
        "step": step, "param_groups": osd["param_groups"], "optimizer_scalars": scalars,
        "scheduler": sched.state_dict(), "python_random": random.getstate(),
        "numpy_random": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }))


def load_train_state(d: Path, model, ema, opt, sched) -> int:
    model.load_state_dict(load_file(str(d / "model.safetensors")))
    ema.load_state_dict(load_file(str(d / "ema.safetensors")))
    meta = json.loads((d / "state.json").read_text())
    tensors = load_file(str(d / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for key, v in meta["optimizer_scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    sched.load_state_dict(meta["scheduler"])
    rng = load_file(str(d / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all([rng[k] for k in sorted(k for k in rng if k.startswith("cuda"))])
    random.setstate((meta["python_random"][0], tuple(meta["python_random"][1]), meta["python_random"][2]))
    s = meta["numpy_random"]
    np.random.set_state((s[0], np.array(s[1], dtype=np.uint32), *s[2:]))
    return int(meta["step"])


def latest_checkpoint(out: Path) -> Path | None:
    steps = sorted((out / "checkpoints").glob("step_*")) if (out / "checkpoints").is_dir() else []
    steps = [s for s in steps if (s / "train_state" / "state.json").is_file()]
    return steps[-1] if steps else None


def train(dataset: str | Path, out: str | Path, config: str | Path | None = None, resume: bool = False,
          stop_at: int | None = None, progress: bool = True) -> Path:
    """Train and return the final model checkpoint directory. ``stop_at`` ends the run
    early at that step (after checkpointing), as an interruption would."""
    model_section, tc = load_run_config(config)
    out = Path(out)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    # Before the process group forms (a rendezvous of every rank), so that no rank has
    # written into --out yet when any rank checks it.
    if out.exists() and not resume and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: choose another --out, or pass --resume")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if tc.device == "auto" else tc.device)
    if world > 1:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    store = EpisodeStore.open(dataset)
    cfg = policy_config_for(store, model_section)
    check_dataset(store, cfg, tc.exclude_episodes)
    excluded = set(tc.exclude_episodes)
    kept = [e for e in range(store.n_episodes) if e not in excluded]
    train_idx, val_idx = split_episodes(len(kept), tc.val_ratio, tc.seed)
    train_eps, val_eps = [kept[i] for i in train_idx], [kept[i] for i in val_idx]
    if tc.exclude_episodes:
        log.info("excluded episodes %s (training.exclude_episodes)", sorted(tc.exclude_episodes))
    normalizer = fit_normalizer(store, train_eps, [k.name for k in cfg.obs.lowdim])
    torch.manual_seed(tc.seed + rank)
    random.seed(tc.seed + rank)
    np.random.seed(tc.seed + rank)
    policy = build_policy(cfg, normalizer).to(device)
    ema = copy.deepcopy(policy).eval().requires_grad_(False)
    loss_module = _LossModule(policy)
    if world > 1:
        loss_module = torch.nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(policy.parameters(), lr=tc.lr, betas=tc.betas, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, tc.warmup_steps, tc.steps))
    step = 0
    history: dict[str, list] = {"step": [], "loss": [], "lr": [], "val_step": [], "val_loss": [], "val_action_error": []}
    ckpt = None
    if resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            raise FileNotFoundError(f"--resume: no checkpoint with a training state under {out}/checkpoints")
        step = int(json.loads((ckpt / "train_state" / "state.json").read_text())["step"])
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(
            {"dataset": str(dataset), "policy": cfg.to_dict(), "training": dataclasses.asdict(tc)}, sort_keys=False))
    train_set = SequenceDataset(dataset, train_eps, cfg)
    sampler = EpochBatches(len(train_set), tc.batch_size, tc.seed, step, rank, world)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, num_workers=tc.num_workers,
                                         pin_memory=device.type == "cuda", persistent_workers=tc.num_workers > 0)
    val_loader = None
    if val_eps and rank == 0:
        val_loader = torch.utils.data.DataLoader(SequenceDataset(dataset, val_eps, cfg), batch_size=tc.batch_size,
                                                 shuffle=False, num_workers=0)
    amp = tc.mixed_precision and device.type == "cuda"
    end = min(tc.steps, stop_at) if stop_at else tc.steps
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=tc.steps, initial=step, desc="train", unit="step", dynamic_ncols=True, mininterval=2.0)
    t_data = t_total = 0.0
    batches = iter(loader)  # draws a seed from the global RNG: before the RNG state is restored
    if ckpt is not None:
        load_train_state(ckpt / "train_state", policy, ema, opt, sched)
        if (out / "history.json").is_file():
            history = json.loads((out / "history.json").read_text())
            # Drop what the interrupted run logged after its last checkpoint.
            for clock, series in (("step", ("loss", "lr")), ("val_step", ("val_loss", "val_action_error"))):
                keep = [i for i, s in enumerate(history[clock]) if s <= step]
                for k in (clock, *series):
                    history[k] = [history[k][i] for i in keep]
        log.info("resumed from %s at step %d", ckpt, step)
    while step < end:
        t0 = time.perf_counter()
        batch = _to(next(batches), device)
        t_data += time.perf_counter() - t0
        policy.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_module(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        decay = ema_decay(step, tc.ema_power, tc.ema_max_decay)
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), policy.parameters()):
                pe.lerp_(p, 1.0 - decay)
        step += 1
        t_total += time.perf_counter() - t0
        if rank == 0:
            history["step"].append(step)
            history["loss"].append(float(loss.detach()))
            history["lr"].append(sched.get_last_lr()[0])
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", data=f"{100 * t_data / max(t_total, 1e-9):.0f}%")
            if val_loader is not None and (step % tc.val_every == 0 or step == end):
                vl, ve = validate(ema, val_loader, tc.val_batches, device, tc.seed)
                history["val_step"].append(step)
                history["val_loss"].append(vl)
                history["val_action_error"].append(ve)
                log.info("step %d: val loss %.4f, action error %.4f", step, vl, ve)
            if step % tc.checkpoint_every == 0 or step == end:
                _checkpoint(out, step, policy, ema, opt, sched, history, tc.keep_checkpoints)
    if bar:
        bar.close()
    final = out / "model"
    if rank == 0 and step >= tc.steps:
        save_checkpoint(ema, final, metadata={"dataset": str(dataset), "steps": step,
                                              "train_episodes": train_eps, "val_episodes": val_eps})
    if world > 1:
        torch.distributed.destroy_process_group()
    log.info("data loading took %.0f%% of the step time", 100 * t_data / max(t_total, 1e-9))
    return final


@torch.no_grad()
def validate(ema, loader, n_batches: int, device, seed: int) -> tuple[float, float]:
    """(diffusion loss, executed-action RMSE in joint units) of the EMA weights on held-out episodes,
    with fixed noise so values are comparable across steps."""
    cfg = ema.config
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    ema.reset(seed)  # the policy's own noise generator: same initial noise at every validation
    losses, errors = [], []
    lo, hi = cfg.n_obs_steps - 1, cfg.n_obs_steps - 1 + cfg.n_action_steps
    for i, batch in enumerate(loader):
        if i >= n_batches:
            break
        batch = _to(batch, device)
        losses.append(float(ema.compute_loss(batch)))
        pred = ema.sample(batch["obs"])
        errors.append(float(((pred[:, lo:hi] - batch["action"][:, lo:hi]) ** 2).mean().sqrt()))
    torch.set_rng_state(state)
    return float(np.mean(losses)), float(np.mean(errors))


def _checkpoint(out: Path, step: int, policy, ema, opt, sched, history, keep: int) -> None:
    d = out / "checkpoints" / f"step_{step:07d}"
    save_checkpoint(ema, d, metadata={"step": step})
    save_train_state(d / "train_state", policy, ema, opt, sched, step)
    (out / "history.json").write_text(json.dumps(history))
    plot_history(history, out / "loss.png")
    old = sorted((out / "checkpoints").glob("step_*"))[:-keep]
    for o in old:
        shutil.rmtree(o, ignore_errors=True)


def plot_history(history: Mapping[str, list], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    if history["step"]:
        loss = np.array(history["loss"])
        k = max(1, len(loss) // 100)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax[0].plot(history["step"], loss, alpha=0.3, label="train loss")
        ax[0].plot(history["step"][k - 1:], smooth, label=f"train loss (mean of {k})")
    if history["val_step"]:
        ax[0].plot(history["val_step"], history["val_loss"], "o-", label="val loss (EMA)")
        ax[1].plot(history["val_step"], history["val_action_error"], "o-", color="C3")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].legend()
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("val action RMSE (joint units)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
