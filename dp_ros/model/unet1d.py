"""1-D temporal conditional U-Net, the paper's CNN-based denoiser.

Module names and nesting follow the reference implementation
(real-stanford/diffusion_policy, ``ConditionalUnet1D``) so that its state dicts map
onto ours key for key: ``diffusion_step_encoder``, ``down_modules``, ``mid_modules``,
``up_modules``, ``final_conv``; each residual block has ``blocks``, ``cond_encoder``
and ``residual_conv``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from dp_ros.model.config import UNetConfig


class SinusoidalPosEmb(nn.Module):
    """Diffusion step k -> (B, dim) sinusoidal embedding."""

    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(torch.arange(half) * -(math.log(10000.0) / (half - 1)))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        arg = k.float()[:, None] * self.freqs[None, :]  # (B,) -> (B, dim/2)
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class Unsqueeze(nn.Module):
    """(B, C) -> (B, C, 1); has no weights (the reference uses einops.Rearrange here)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1)


class Conv1dBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, c_out),
            nn.Mish(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ConditionalResidualBlock1D(nn.Module):
    """Two conv blocks with FiLM in between: out = scale(cond) * h + bias(cond)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.c_out = c_out
        self.blocks = nn.ModuleList(
            [
                Conv1dBlock(c_in, c_out, kernel_size, n_groups),
                Conv1dBlock(c_out, c_out, kernel_size, n_groups),
            ]
        )
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out), Unsqueeze())
        self.residual_conv = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def film(self, cond: torch.Tensor) -> torch.Tensor:
        """(B, cond_dim) -> (B, 2, C_out, 1): the FiLM scale and bias."""
        return self.cond_encoder(cond).reshape(cond.shape[0], 2, self.c_out, 1)  # (B, 2*C_out, 1) -> (B, 2, C_out, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None,
                film: torch.Tensor | None = None) -> torch.Tensor:
        """``film`` (from ``self.film``) may be given instead of ``cond``."""
        film = self.film(cond) if film is None else film
        h = self.blocks[0](x)  # (B, C_in, T) -> (B, C_out, T)
        h = film[:, 0] * h + film[:, 1]
        h = self.blocks[1](h)
        return h + self.residual_conv(x)


class ConditionalUnet1D(nn.Module):
    """(noisy actions (B, T_p, A), step k (B,), global cond (B, G)) -> (B, T_p, A)."""

    def __init__(self, action_dim: int, global_cond_dim: int, cfg: UNetConfig):
        super().__init__()
        dsed = cfg.step_embed_dim
        self.diffusion_step_encoder = nn.Sequential(
            SinusoidalPosEmb(dsed), nn.Linear(dsed, dsed * 4), nn.Mish(), nn.Linear(dsed * 4, dsed)
        )
        cond_dim = dsed + global_cond_dim
        dims = [action_dim, *cfg.down_dims]
        in_out = list(zip(dims[:-1], dims[1:]))
        k, g = cfg.kernel_size, cfg.n_groups

        def block(ci: int, co: int) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(ci, co, cond_dim, k, g)

        self.down_modules = nn.ModuleList()
        for i, (ci, co) in enumerate(in_out):
            last = i == len(in_out) - 1
            down = nn.Conv1d(co, co, 3, stride=2, padding=1) if not last else nn.Identity()
            self.down_modules.append(nn.ModuleList([block(ci, co), block(co, co), down]))

        mid = cfg.down_dims[-1]
        self.mid_modules = nn.ModuleList([block(mid, mid), block(mid, mid)])

        self.up_modules = nn.ModuleList()
        for ci, co in reversed(in_out[1:]):
            up = nn.ConvTranspose1d(ci, ci, 4, stride=2, padding=1)
            self.up_modules.append(nn.ModuleList([block(co * 2, ci), block(ci, ci), up]))

        start = cfg.down_dims[0]
        self.final_conv = nn.Sequential(Conv1dBlock(start, start, k, cfg.final_groups), nn.Conv1d(start, action_dim, 1))

    def res_blocks(self) -> list[ConditionalResidualBlock1D]:
        """The residual blocks in the order ``forward`` runs them."""
        return ([b for m in self.down_modules for b in m[:2]] + list(self.mid_modules)
                + [b for m in self.up_modules for b in m[:2]])

    def films(self, timestep: torch.Tensor, global_cond: torch.Tensor) -> list[torch.Tensor]:
        """(B,) steps, (B, G) conditioning -> every block's FiLM (B, 2, C, 1), in block order.

        The conditioning path depends only on the step and the observation, so an
        inference backend can compute it for all K steps of a chunk in one batch."""
        cond = torch.cat([self.diffusion_step_encoder(timestep), global_cond], dim=-1)  # (B, dsed + G)
        return [block.film(cond) for block in self.res_blocks()]

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | None, global_cond: torch.Tensor | None,
                films: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``films`` (from ``self.films``) may be given instead of the step and conditioning."""
        films = iter(self.films(timestep, global_cond) if films is None else films)
        x = sample.transpose(1, 2)  # (B, T_p, A) -> (B, A, T_p)
        skips = []
        for res1, res2, down in self.down_modules:
            x = res2(res1(x, film=next(films)), film=next(films))
            skips.append(x)
            x = down(x)
        for res in self.mid_modules:
            x = res(x, film=next(films))
        for res1, res2, up in self.up_modules:
            x = torch.cat([x, skips.pop()], dim=1)  # (B, C, T) -> (B, 2C, T)
            x = up(res2(res1(x, film=next(films)), film=next(films)))
        x = self.final_conv(x)
        return x.transpose(1, 2)  # (B, A, T_p) -> (B, T_p, A)
