"""Time-series diffusion transformer, the paper's transformer-based denoiser.

Noisy actions are the decoder's tokens, with causal self-attention among them. The
diffusion-step embedding and the T_o observation feature vectors form the condition
sequence (1 + T_o tokens) that every action token reads by cross-attention.

    tokens:     a_0 a_1 ... a_{T_p-1}     (causal self-attention)
    condition:  [k] o_0 ... o_{T_o-1}     (cross-attention, all visible)
"""
from __future__ import annotations

import torch
import torch.nn as nn

from dp_ros.model.config import TransformerConfig
from dp_ros.model.unet1d import SinusoidalPosEmb


class TransformerDenoiser(nn.Module):
    """(noisy actions (B, T_p, A), step k (B,), obs features (B, T_o, D)) -> (B, T_p, A)."""

    def __init__(self, action_dim: int, horizon: int, obs_dim: int, n_obs_steps: int, cfg: TransformerConfig):
        super().__init__()
        e = cfg.n_emb
        self.input_emb = nn.Linear(action_dim, e)
        self.pos_emb = nn.Parameter(torch.zeros(1, horizon, e))
        self.time_emb = SinusoidalPosEmb(e)
        self.cond_obs_emb = nn.Linear(obs_dim, e)
        self.cond_pos_emb = nn.Parameter(torch.zeros(1, 1 + n_obs_steps, e))
        self.cond_encoder = nn.Sequential(nn.Linear(e, 4 * e), nn.Mish(), nn.Linear(4 * e, e))
        self.drop = nn.Dropout(cfg.p_drop_emb)
        layer = nn.TransformerDecoderLayer(
            d_model=e,
            nhead=cfg.n_head,
            dim_feedforward=4 * e,
            dropout=cfg.p_drop_attn,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.decoder = nn.TransformerDecoder(layer, num_layers=cfg.n_layer)
        causal = torch.triu(torch.full((horizon, horizon), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", causal, persistent=False)
        self.ln_f = nn.LayerNorm(e)
        self.head = nn.Linear(e, action_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.pos_emb, std=0.02)
        nn.init.normal_(self.cond_pos_emb, std=0.02)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        t_emb = self.time_emb(timestep)[:, None]  # (B,) -> (B, 1, E)
        cond = torch.cat([t_emb, self.cond_obs_emb(obs)], dim=1)  # (B, 1 + T_o, E)
        memory = self.cond_encoder(self.drop(cond + self.cond_pos_emb))
        x = self.drop(self.input_emb(sample) + self.pos_emb)  # (B, T_p, A) -> (B, T_p, E)
        x = self.decoder(x, memory, tgt_mask=self.causal_mask, tgt_is_causal=True)
        return self.head(self.ln_f(x))  # (B, T_p, E) -> (B, T_p, A)
