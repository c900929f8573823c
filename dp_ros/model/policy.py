"""Policies: observation window in, T_p actions in joint units out.

The API has three calls and no clocks, queues or ROS objects:

- ``reset(seed=None)``: start a new rollout; re-seeds the policy's own noise generator.
- ``predict_chunk(obs_window, noise=None, num_inference_steps=None, guide=None)``: one
  unbatched window (each camera ``(T_o, H, W, 3)`` uint8 RGB, each low-dim key
  ``(T_o, D)``) -> ``(T_p, action_dim)`` float64 actions in joint units. ``guide``
  (``core.seams.Guide``, joint units) makes the denoiser continue committed actions.
- ``compute_loss(batch)``: a training batch ``{"obs": {key: (B, T_o, ...)},
  "action": (B, T_p, A)}`` in raw units -> scalar loss.

Observation window and prediction (T_o = 2, T_p = 16, T_a = 8)::

    obs steps        |o0|o1|
    predicted        |a0|a1|a2|a3|a4|a5|a6|a7|a8|a9|...|a15|
    executed            |a1|a2|a3|a4|a5|a6|a7|a8|         (T_o-1 ... T_o-1+T_a-1)

Inference is split the way the accelerated backends run it: ``encode`` once per chunk
(images and state -> normalized conditioning), then ``denoise`` (K DDIM steps of the
denoiser), then unnormalize. Accelerated backends run the same ``encode`` and ``denoiser``
modules with the same ``DDIMPlan`` constants.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dp_ros.core.normalizer import Normalizer
from dp_ros.core.seams import guide_arrays
from dp_ros.model.config import PolicyConfig
from dp_ros.model.noise import DDIMPlan, NoiseSchedule, commit_prefix, ddim_plan, guide_sample
from dp_ros.model.transformer import TransformerDenoiser
from dp_ros.model.unet1d import ConditionalUnet1D
from dp_ros.model.vision import CameraEncoders


class ObsEncoder(nn.Module):
    """Raw observation window -> per-step features (B, T_o, obs_feature_dim).

    Cameras: uint8 RGB (B, T_o, H, W, 3) -> ResNet features. Low-dim keys: min-max
    normalized to [-1, 1] with the dataset statistics. Order: cameras, then low-dim
    keys, both in configuration order.
    """

    def __init__(self, cfg: PolicyConfig, normalizer: Normalizer):
        super().__init__()
        self.cfg = cfg
        image_norm = {c.name: (normalizer.stats[c.name].scale, normalizer.stats[c.name].offset)
                      for c in cfg.obs.cameras if c.name in normalizer}
        self.cameras = CameraEncoders(cfg.obs.cameras, cfg.vision, image_norm) if cfg.obs.cameras else None
        for key in cfg.obs.lowdim:
            s = normalizer.stats[key.name]
            self.register_buffer(f"scale_{key.name}", torch.tensor(s.scale, dtype=torch.float32), persistent=False)
            self.register_buffer(f"offset_{key.name}", torch.tensor(s.offset, dtype=torch.float32), persistent=False)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        feats = []
        if self.cameras is not None:
            feats.append(self.cameras({c.name: obs[c.name] for c in self.cfg.obs.cameras}))
        for key in self.cfg.obs.lowdim:
            x = obs[key.name].float()
            feats.append(x * getattr(self, f"scale_{key.name}") + getattr(self, f"offset_{key.name}"))
        return torch.cat([f.to(feats[0].dtype) for f in feats], dim=-1)  # the image features' dtype


class _PolicyBase(nn.Module):
    def __init__(self, cfg: PolicyConfig, normalizer: Normalizer):
        super().__init__()
        cfg.validate()
        missing = [k for k in ("action", *(k.name for k in cfg.obs.lowdim)) if k not in normalizer]
        if missing:
            raise ValueError(f"the normalizer has no statistics for {missing}")
        if normalizer.stats["action"].dim != cfg.action_dim:
            raise ValueError(
                f"action statistics have {normalizer.stats['action'].dim} dimensions, "
                f"but the policy has {cfg.action_dim} joints"
            )
        for cam in cfg.obs.cameras:
            if cam.name in normalizer and normalizer.stats[cam.name].dim != 3:
                raise ValueError(f"statistics for camera {cam.name!r} have {normalizer.stats[cam.name].dim} "
                                 "dimensions; a camera's normalization has one per RGB channel (3)")
        for key in cfg.obs.lowdim:
            if normalizer.stats[key.name].dim != key.dim:
                raise ValueError(
                    f"statistics for {key.name!r} have {normalizer.stats[key.name].dim} dimensions, "
                    f"the config says {key.dim}"
                )
        self.config = cfg
        self.normalizer = normalizer
        self.obs_encoder = ObsEncoder(cfg, normalizer)
        a = normalizer.stats["action"]
        self.register_buffer("action_scale", torch.tensor(a.scale, dtype=torch.float32), persistent=False)
        self.register_buffer("action_offset", torch.tensor(a.offset, dtype=torch.float32), persistent=False)
        self.generator = torch.Generator()
        self.generator.manual_seed(0)
        self.metadata: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return self.action_scale.device

    def reset(self, seed: int | None = None) -> None:
        """Start a new rollout: re-seed the noise generator (a random seed when None)."""
        self.generator.manual_seed(int(seed) if seed is not None else torch.seed())

    def normalize_action(self, a: torch.Tensor) -> torch.Tensor:
        return a * self.action_scale + self.action_offset

    def unnormalize_action(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self.action_offset) / self.action_scale

    def guide_tensors(self, guide) -> tuple[torch.Tensor, torch.Tensor]:
        """A ``core.seams.Guide`` (joint units) -> normalized targets and the mask, both
        (1, T_p, A) float32 on the policy's device (all zero for None: no guidance)."""
        a = self.normalizer.stats["action"]
        arrays = guide_arrays(guide, a.scale, a.offset, self.config.horizon, self.config.action_dim)
        return tuple(torch.as_tensor(x, device=self.device).unsqueeze(0) for x in arrays)  # (T_p, A) -> (1, T_p, A)

    def check_obs(self, obs: Mapping[str, Any], batched: bool) -> None:
        """Raise ValueError naming the first key whose shape or dtype is wrong."""
        cfg = self.config
        lead = ("B", cfg.n_obs_steps) if batched else (cfg.n_obs_steps,)
        for cam in cfg.obs.cameras:
            expect = (cam.height, cam.width, 3)
            self._check_one(obs, cam.name, lead, expect, uint8=True)
        for key in cfg.obs.lowdim:
            self._check_one(obs, key.name, lead, (key.dim,), uint8=False)

    @staticmethod
    def _check_one(obs, name, lead, tail, uint8):
        if name not in obs:
            raise ValueError(f"observation is missing {name!r}; it has {sorted(obs)}")
        x = obs[name]
        shape = tuple(x.shape)
        want = (*lead, *tail)
        ok = len(shape) == len(want) and all(w == "B" or w == s for w, s in zip(want, shape))
        if not ok:
            raise ValueError(f"observation {name!r} has shape {shape}; expected {want}")
        is_u8 = x.dtype in (np.uint8, torch.uint8)
        if uint8 and not is_u8:
            raise ValueError(f"camera {name!r} must be uint8 RGB, got {x.dtype}")

    def _window_to_batch(self, obs_window: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        self.check_obs(obs_window, batched=False)
        out = {}
        for key in self.config.obs.keys:
            t = torch.as_tensor(np.ascontiguousarray(obs_window[key]))
            if not t.dtype == torch.uint8:
                t = t.float()
                if not torch.isfinite(t).all():
                    raise ValueError(f"observation {key!r} contains NaN or infinite values")
            out[key] = t.unsqueeze(0).to(self.device)  # (T_o, ...) -> (1, T_o, ...)
        return out

    @torch.no_grad()
    def predict_chunk(
        self,
        obs_window: Mapping[str, Any],
        noise: torch.Tensor | np.ndarray | None = None,
        num_inference_steps: int | None = None,
        guide=None,
    ) -> np.ndarray:
        """One observation window -> (T_p, action_dim) float64 joint targets; ``guide``:
        ``core.seams.Guide`` (diffusion policies; the regression baseline ignores it)."""
        was_training = self.training
        self.eval()
        try:
            batch = self._window_to_batch(obs_window)
            if noise is not None:
                noise = torch.as_tensor(noise, dtype=torch.float32)
                expect = (self.config.horizon, self.config.action_dim)
                if tuple(noise.shape) != expect:
                    raise ValueError(f"noise has shape {tuple(noise.shape)}; expected {expect}")
                noise = noise.unsqueeze(0)  # (T_p, A) -> (1, T_p, A)
            actions = self.sample(batch, noise=noise, num_inference_steps=num_inference_steps, guide=guide)
        finally:
            self.train(was_training)
        return actions[0].double().cpu().numpy()


def build_denoiser(cfg: PolicyConfig) -> nn.Module:
    """The configured denoiser network: (sample (B, T_p, A), timestep (B,), cond) -> (B, T_p, A)."""
    if cfg.denoiser == "unet":
        return ConditionalUnet1D(cfg.action_dim, cfg.n_obs_steps * cfg.obs_feature_dim, cfg.unet)
    return TransformerDenoiser(cfg.action_dim, cfg.horizon, cfg.obs_feature_dim, cfg.n_obs_steps, cfg.transformer)


def denoiser_condition(cfg: PolicyConfig, feats: torch.Tensor) -> torch.Tensor:
    """Per-step features (B, T_o, D) -> the denoiser's conditioning: one global vector for
    the U-Net, the token sequence for the transformer."""
    return feats.flatten(1) if cfg.denoiser == "unet" else feats


class DiffusionPolicy(_PolicyBase):
    """Diffusion Policy: DDPM training, DDIM sampling, U-Net or transformer denoiser."""

    def __init__(self, cfg: PolicyConfig, normalizer: Normalizer):
        super().__init__(cfg, normalizer)
        self.denoiser = build_denoiser(cfg)
        self.schedule = NoiseSchedule(cfg.noise)
        self._plans: dict[tuple[int, str], DDIMPlan] = {}

    def encode(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Batched raw observations -> the denoiser's conditioning."""
        return denoiser_condition(self.config, self.obs_encoder(obs))

    def plan(self, num_inference_steps: int | None = None) -> DDIMPlan:
        n = self.config.noise.num_inference_steps if num_inference_steps is None else int(num_inference_steps)
        key = (n, str(self.device))
        if key not in self._plans:
            self._plans[key] = ddim_plan(self.config.noise, n).to(self.device)
        return self._plans[key]

    def denoise(self, cond: torch.Tensor, noise: torch.Tensor, plan: DDIMPlan,
                guide: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Run the DDIM steps from ``noise`` (B, T_p, A); returns normalized actions.
        ``guide``: normalized targets and mask (``guide_tensors``), applied before every step
        and to the result (``noise.guide_sample``)."""
        x = noise
        b = x.shape[0]
        for i in range(plan.num_steps):
            if guide is not None:
                x = guide_sample(x, noise, *guide, plan.sqrt_abar[i], plan.sqrt_one_minus[i])
            k = plan.timesteps[i].expand(b)
            x = plan.step(i, x, self.denoiser(x, k, cond))
        if guide is not None:
            x = commit_prefix(x, *guide)
        return x

    def initial_noise(self, batch_size: int) -> torch.Tensor:
        shape = (batch_size, self.config.horizon, self.config.action_dim)
        return torch.randn(shape, generator=self.generator).to(self.device)

    @torch.no_grad()
    def sample(self, obs, noise=None, num_inference_steps=None, guide=None) -> torch.Tensor:
        """Batched raw observations -> (B, T_p, A) actions in joint units."""
        cond = self.encode(obs)
        if noise is None:
            noise = self.initial_noise(cond.shape[0])
        tensors = self.guide_tensors(guide) if guide is not None else None
        x = self.denoise(cond, noise.to(self.device, torch.float32), self.plan(num_inference_steps), tensors)
        return self.unnormalize_action(x)

    def compute_loss(self, batch: Mapping[str, Any]) -> torch.Tensor:
        obs, action = batch["obs"], batch["action"]
        x0 = self.normalize_action(action.float())  # (B, T_p, A) in [-1, 1]
        cond = self.encode(obs)
        noise = torch.randn_like(x0)
        k = torch.randint(0, self.schedule.num_train_steps, (x0.shape[0],), device=x0.device)
        pred = self.denoiser(self.schedule.add_noise(x0, noise, k), k, cond)
        return F.mse_loss(pred, self.schedule.target(x0, noise))


class RegressionPolicy(_PolicyBase):
    """The same observation encoder with a network that regresses the T_p actions (MSE).

    A baseline: on multimodal demonstrations it averages the modes, which is what
    Diffusion Policy is meant to avoid. ``noise`` is accepted and ignored.
    ``regression_net``: ``mlp`` (two hidden layers of 512) or ``denoiser``: the diffusion
    policy's own denoiser network, with the same parameters, fed an all-zero sample at
    timestep 0 and trained to output the normalized actions, so the comparison with a
    diffusion policy of the same configuration differs in the objective alone.
    """

    hidden = 512

    def __init__(self, cfg: PolicyConfig, normalizer: Normalizer):
        super().__init__(cfg, normalizer)
        if cfg.regression_net == "denoiser":
            self.denoiser = build_denoiser(cfg)
            return
        hidden = self.hidden
        d_in = cfg.n_obs_steps * cfg.obs_feature_dim
        self.head = nn.Sequential(
            nn.Linear(d_in, hidden), nn.Mish(), nn.Linear(hidden, hidden), nn.Mish(),
            nn.Linear(hidden, cfg.horizon * cfg.action_dim),
        )

    def _forward(self, obs) -> torch.Tensor:
        cfg = self.config
        feats = self.obs_encoder(obs)  # (B, T_o, D)
        if cfg.regression_net == "denoiser":
            b = feats.shape[0]
            zeros = feats.new_zeros((b, cfg.horizon, cfg.action_dim))
            return self.denoiser(zeros, torch.zeros(b, dtype=torch.long, device=feats.device),
                                 denoiser_condition(cfg, feats))
        out = self.head(feats.flatten(1))  # (B, T_o*D) -> (B, T_p*A)
        return out.reshape(-1, cfg.horizon, cfg.action_dim)

    @torch.no_grad()
    def sample(self, obs, noise=None, num_inference_steps=None, guide=None) -> torch.Tensor:
        return self.unnormalize_action(self._forward(obs))

    def compute_loss(self, batch: Mapping[str, Any]) -> torch.Tensor:
        target = self.normalize_action(batch["action"].float())
        return F.mse_loss(self._forward(batch["obs"]), target)


POLICIES = {"diffusion": DiffusionPolicy, "regression": RegressionPolicy}


def build_policy(cfg: PolicyConfig, normalizer: Normalizer) -> _PolicyBase:
    """The policy class registered for ``cfg.head``."""
    cfg.validate()
    return POLICIES[cfg.head](cfg, normalizer)
