"""Named model configurations used by the benchmarks, the tests and the simulator.

- ``paper_real``: the paper's real-world setup (Chi et al. 2023): 2 cameras at 240x320
  cropped to 216x288, 7 joints, T_o = 2, T_p = 16, T_a = 8, U-Net 256/512/1024, 10 DDIM
  steps.
- ``sim_small``: one 96x96 camera cropped to 88x88 and a narrower U-Net, sized for the
  simulated arm on a CPU.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dp_ros.core.normalizer import Normalizer
from dp_ros.model.config import (
    CameraConfig,
    LowdimConfig,
    NoiseConfig,
    ObsConfig,
    PolicyConfig,
    UNetConfig,
)


def paper_real(denoiser: str = "unet") -> PolicyConfig:
    joints = tuple(f"joint_{i + 1}" for i in range(7))
    cams = (CameraConfig("camera_0", 240, 320, 216, 288), CameraConfig("camera_1", 240, 320, 216, 288))
    return PolicyConfig(
        joint_names=joints,
        dt=0.1,
        obs=ObsConfig(cameras=cams, lowdim=(LowdimConfig("joint_pos", 7),)),
        n_obs_steps=2,
        horizon=16,
        n_action_steps=8,
        denoiser=denoiser,
        unet=UNetConfig(down_dims=(256, 512, 1024)),
        noise=NoiseConfig(num_train_steps=100, num_inference_steps=10),
    ).validate()


def sim_small(n_joints: int = 4, denoiser: str = "unet") -> PolicyConfig:
    joints = tuple(f"joint_{i + 1}" for i in range(n_joints))
    return PolicyConfig(
        joint_names=joints,
        dt=0.1,
        obs=ObsConfig(
            cameras=(CameraConfig("camera", 96, 96, 88, 88),),
            lowdim=(LowdimConfig("joint_pos", n_joints),),
        ),
        n_obs_steps=2,
        horizon=16,
        n_action_steps=8,
        denoiser=denoiser,
        unet=UNetConfig(down_dims=(64, 128, 256)),
        noise=NoiseConfig(num_train_steps=100, num_inference_steps=10),
    ).validate()


PRESETS = {"paper_real": paper_real, "sim_small": sim_small}


def with_denoiser(cfg: PolicyConfig, denoiser: str) -> PolicyConfig:
    return dataclasses.replace(cfg, denoiser=denoiser).validate()


def placeholder_normalizer(cfg: PolicyConfig, low: float = -1.0, high: float = 1.0) -> Normalizer:
    """Statistics spanning [low, high] for every key: for random-weight models
    (benchmarks, tests); trained checkpoints carry their dataset's statistics."""
    stats = {"action": cfg.action_dim, **{k.name: k.dim for k in cfg.obs.lowdim}}
    return Normalizer.fit({k: np.stack([np.full(d, low), np.full(d, high)]) for k, d in stats.items()})


def example_window(cfg: PolicyConfig, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """One observation window with the right shapes and dtypes: zeros, or uniform random
    values (images 0..255, low-dim keys in [-1, 1]) when ``rng`` is given."""
    window: dict[str, np.ndarray] = {}
    for c in cfg.obs.cameras:
        shape = (cfg.n_obs_steps, c.height, c.width, 3)
        window[c.name] = (np.zeros(shape, np.uint8) if rng is None
                          else rng.integers(0, 256, shape, dtype=np.uint8))
    for k in cfg.obs.lowdim:
        shape = (cfg.n_obs_steps, k.dim)
        window[k.name] = np.zeros(shape) if rng is None else rng.uniform(-1.0, 1.0, shape)
    return window
