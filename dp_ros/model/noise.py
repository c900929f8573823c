"""DDPM training schedule (squared cosine) and deterministic DDIM sampling.

Training (Ho et al. 2020): x_k = sqrt(abar_k) x_0 + sqrt(1 - abar_k) eps, with k drawn
uniformly from 0..K-1 and abar from the squared-cosine schedule (Nichol & Dhariwal
2021, betas capped at 0.999).

Sampling (Song et al. 2021, eta = 0): N timesteps k_0 > ... > k_{N-1}, by the noise
config's ``timestep_spacing``:

- ``leading`` (the reference implementation's scheduler): ``k_i = (N-1-i) * (K // N)``.
  One step runs at timestep 0 only, where the input is taken as nearly clean: near-random
  actions at 1-2 steps.
- ``trailing`` (diffusers' name): ``k_i = round((T+1) * (N-i) / N) - 1`` with T = K-1,
  so the first step is at the highest noise level.
- ``capped`` (the default): trailing with T the highest timestep whose abar is at least
  ``MIN_ABAR_EPSILON`` for an epsilon-predicting model, or N-1 if that is higher (so
  any N up to K has distinct timesteps); T = K-1 for sample prediction.
  The squared-cosine schedule ends at abar ~ 2e-7, where an epsilon network's x_0
  estimate (x - sqrt(1-abar) eps) / sqrt(abar) multiplies its error by ~2000: one
  trailing step is as random as one leading step. Measured on a trained low-dim policy
  (test/test_few_step_sampling.py, docs/model.md): one step lands a mean 0.33 (leading),
  0.35 (trailing) and 0.062 (capped) of the joint range away from the 10-step chunk.

Each step predicts x_0, clips it to [-1, 1], and moves to the next timestep of the
list; after the last step abar is 1, so the result is the clipped x_0.
The update is a fixed affine map per step, so the coefficients are precomputed once
per step count: nothing in the loop depends on the host.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dp_ros.model.config import NoiseConfig


def squaredcos_alphas_cumprod(num_steps: int, max_beta: float = 0.999) -> torch.Tensor:
    """abar_k for k = 0..K-1 (float64)."""

    def f(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = torch.tensor(
        [min(1 - f((k + 1) / num_steps) / f(k / num_steps), max_beta) for k in range(num_steps)],
        dtype=torch.float64,
    )
    return torch.cumprod(1.0 - betas, dim=0)


class NoiseSchedule:
    """The forward (noising) process used in training."""

    def __init__(self, cfg: NoiseConfig):
        self.num_train_steps = cfg.num_train_steps
        self.prediction_type = cfg.prediction_type
        self.alphas_cumprod = squaredcos_alphas_cumprod(cfg.num_train_steps)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """x_k for clean x0 (B, ...), noise like x0 and integer steps k (B,)."""
        abar = self.alphas_cumprod.to(x0.device)[k].to(x0.dtype)
        abar = abar.reshape(-1, *([1] * (x0.dim() - 1)))  # (B,) -> (B, 1, ...)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What the denoiser learns to output."""
        return noise if self.prediction_type == "epsilon" else x0


@dataclass(frozen=True)
class DDIMPlan:
    """Per-step constants for N deterministic DDIM steps (float32, on one device).

    Step i:  x0 = (x - sqrt_one_minus[i] * out) / sqrt_abar[i], eps = out    (epsilon)
             x0 = out, eps = (x - sqrt_abar[i] * x0) / sqrt_one_minus[i]     (sample)
             x  = sqrt_abar_prev[i] * clip(x0) + sqrt_one_minus_prev[i] * eps

    ``clip``: the range x0 is clipped to (None: not clipped). As in diffusers' DDIM step
    (the reference implementation's scheduler), eps comes from the unclipped x0.
    """

    timesteps: torch.Tensor  # (N,) int64, descending
    sqrt_abar: torch.Tensor  # (N,)
    sqrt_one_minus: torch.Tensor  # (N,)
    sqrt_abar_prev: torch.Tensor  # (N,)
    sqrt_one_minus_prev: torch.Tensor  # (N,)
    prediction_type: str
    clip: float | None = 1.0

    @property
    def num_steps(self) -> int:
        return int(self.timesteps.numel())

    def to(self, device: torch.device | str) -> "DDIMPlan":
        return DDIMPlan(
            *(getattr(self, n).to(device) for n in
              ("timesteps", "sqrt_abar", "sqrt_one_minus", "sqrt_abar_prev", "sqrt_one_minus_prev")),
            prediction_type=self.prediction_type, clip=self.clip,
        )

    @property
    def levels(self) -> torch.Tensor:
        """(N, 2): each step's noise level, sqrt(abar) and sqrt(1 - abar), as the inpainting
        guidance (``guide_sample``, the exported denoiser's ``level`` input) takes it."""
        return torch.stack([self.sqrt_abar, self.sqrt_one_minus], dim=1)

    def coefficients(self, i: int) -> tuple[torch.Tensor, ...]:
        """Step i's four constants (0-d tensors), in ``ddim_update``'s order."""
        return self.sqrt_abar[i], self.sqrt_one_minus[i], self.sqrt_abar_prev[i], self.sqrt_one_minus_prev[i]

    def step(self, i: int, x: torch.Tensor, model_out: torch.Tensor) -> torch.Tensor:
        """One update from timestep ``timesteps[i]`` to the next (or to x_0 at the end)."""
        return ddim_update(x, model_out, *self.coefficients(i), self.prediction_type, self.clip)


def ddim_update(x: torch.Tensor, model_out: torch.Tensor, sqrt_abar: torch.Tensor, sqrt_one_minus: torch.Tensor,
                sqrt_abar_prev: torch.Tensor, sqrt_one_minus_prev: torch.Tensor, prediction_type: str,
                clip: float | None = 1.0) -> torch.Tensor:
    """The DDIM update with one step's constants (see ``DDIMPlan``); torch tensors, or numpy
    arrays (the ONNX Runtime backend's loop)."""
    if prediction_type == "epsilon":
        eps = model_out
        x0 = (x - sqrt_one_minus * eps) / sqrt_abar
    else:
        x0 = model_out
        eps = (x - sqrt_abar * x0) / sqrt_one_minus
    if clip is not None:
        x0 = x0.clip(-clip, clip)  # torch's and numpy's name alike
    return sqrt_abar_prev * x0 + sqrt_one_minus_prev * eps


def commit_prefix(x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` where ``mask`` is 0, ``target`` where it is 1, and the blend between (exactly
    ``x`` for an all-zero mask)."""
    return x + mask * (target - x)


def guide_sample(x: torch.Tensor, noise: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 sqrt_abar: torch.Tensor, sqrt_one_minus: torch.Tensor) -> torch.Tensor:
    """Inpainting guidance before a DDIM step (the seam mode ``inpaint``, ``core.seams``),
    RePaint-style (Lugmayr et al. 2022): where ``mask`` is 1 the sample is replaced by
    ``target`` (normalized actions) noised to this step's level with the chunk's initial
    ``noise``, which is where the deterministic DDIM path of that clean chunk passes;
    where it is between 0 and 1 the two are blended; where it is 0 the sample is left
    exactly as it is, so an all-zero mask gives the unguided sampler bit for bit. After
    the last step the same replacement at noise level 0 (``commit_prefix``) makes the
    fixed actions exactly the committed ones and blends the soft part."""
    return commit_prefix(x, sqrt_abar * target + sqrt_one_minus * noise, mask)


# "capped" spacing, epsilon prediction: the first timestep's abar is at least this, so the
# x0 estimate multiplies the network's error by at most sqrt((1 - abar) / abar) = 3.3.
MIN_ABAR_EPSILON = 0.08


def top_timestep(cfg: NoiseConfig, n: int) -> int:
    """The first (noisiest) timestep of trailing and capped spacing for n steps."""
    if cfg.timestep_spacing == "capped" and cfg.prediction_type == "epsilon":
        usable = torch.nonzero(squaredcos_alphas_cumprod(cfg.num_train_steps) >= MIN_ABAR_EPSILON)
        return max(int(usable.max()) if usable.numel() else 0, n - 1)
    return cfg.num_train_steps - 1


def ddim_timesteps(cfg: NoiseConfig, n: int) -> torch.Tensor:
    """(n,) int64 timesteps, descending, by ``cfg.timestep_spacing`` (module docstring)."""
    k_total = cfg.num_train_steps
    if not 1 <= n <= k_total:
        raise ValueError(f"number of DDIM steps {n} must be in 1..{k_total} (the training steps K)")
    if cfg.timestep_spacing == "leading":
        return torch.arange(n - 1, -1, -1, dtype=torch.int64) * (k_total // n)
    span = top_timestep(cfg, n) + 1
    fractions = torch.arange(n, 0, -1, dtype=torch.float64) / n  # (n,) from 1 down to 1/n
    return torch.floor(span * fractions + 0.5).to(torch.int64) - 1


def ddim_plan(cfg: NoiseConfig, num_inference_steps: int | None = None) -> DDIMPlan:
    """Precompute the DDIM constants for ``num_inference_steps`` (default from cfg)."""
    n = cfg.num_inference_steps if num_inference_steps is None else int(num_inference_steps)
    timesteps = ddim_timesteps(cfg, n)
    abar = squaredcos_alphas_cumprod(cfg.num_train_steps)
    prev = torch.cat([timesteps[1:], torch.tensor([-1])])  # each step moves to the next timestep; -1: clean
    abar_t = abar[timesteps]
    abar_prev = torch.where(prev >= 0, abar[prev.clamp(min=0)], torch.ones_like(abar_t))
    f32 = torch.float32
    return DDIMPlan(
        timesteps=timesteps,
        sqrt_abar=abar_t.sqrt().to(f32),
        sqrt_one_minus=(1 - abar_t).sqrt().to(f32),
        sqrt_abar_prev=abar_prev.sqrt().to(f32),
        sqrt_one_minus_prev=(1 - abar_prev).sqrt().to(f32),
        prediction_type=cfg.prediction_type,
        clip=cfg.clip_sample_range if cfg.clip_sample else None,
    )
