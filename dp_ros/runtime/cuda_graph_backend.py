"""PyTorch on CUDA with the whole chunk in one CUDA graph.

The encoder and every DDIM step are captured once per step count into a CUDA graph
over static input and output buffers; a chunk is: copy the observation and the
initial noise into the static buffers, replay, copy the actions out. The networks
run in float16 under autocast (GroupNorm, softmax and the DDIM arithmetic stay in
float32), which the parity test holds to the FP16 tolerance.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

log = logging.getLogger(__name__)


def unavailable(device: str) -> str | None:
    if not device.startswith("cuda"):
        return f"CUDA graphs need a CUDA device, not {device!r}"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


class CudaGraphBackend:
    name = "cuda_graph"

    def __init__(self, policy, device: str, checkpoint: str | Path | None = None, half: bool = True):
        self.device = torch.device(device)
        self.policy = policy.to(self.device).eval()
        self.config = cfg = policy.config
        self.half = half
        self._static = {c.name: torch.zeros(1, cfg.n_obs_steps, c.height, c.width, 3, dtype=torch.uint8,
                                            device=self.device) for c in cfg.obs.cameras}
        self._static.update({k.name: torch.zeros(1, cfg.n_obs_steps, k.dim, device=self.device)
                             for k in cfg.obs.lowdim})
        self._noise = torch.zeros(1, cfg.horizon, cfg.action_dim, device=self.device)
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._host_out = torch.zeros(cfg.horizon, cfg.action_dim, pin_memory=True)

    @torch.inference_mode()
    def _chunk(self, steps: int) -> torch.Tensor:
        plan = self.policy.plan(steps)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.half, cache_enabled=False):
            cond = self.policy.encode(self._static)
            x = self._noise
            for i in range(plan.num_steps):
                out = self.policy.denoiser(x, plan.timesteps[i].expand(1), cond)
                x = plan.step(i, x, out.float())
        return self.policy.unnormalize_action(x)

    def _graph(self, steps: int):
        if steps not in self._graphs:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up outside the graph (cuDNN autotuning, allocator)
                    self._chunk(steps)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self._chunk(steps)
            self._graphs[steps] = (graph, out)
            log.info("captured a CUDA graph for %d DDIM steps", steps)
        return self._graphs[steps]

    @torch.inference_mode()
    def predict(self, obs_window: Mapping[str, np.ndarray], num_inference_steps: int,
                noise: np.ndarray | None = None) -> np.ndarray:
        graph, out = self._graph(num_inference_steps)
        for key, buf in self._static.items():
            buf[0].copy_(torch.as_tensor(np.ascontiguousarray(obs_window[key])), non_blocking=False)
        if noise is None:
            noise = self.policy.initial_noise(1)[0]
        self._noise[0].copy_(torch.as_tensor(noise, dtype=torch.float32))
        graph.replay()
        self._host_out.copy_(out[0])  # synchronizes: the copy waits for the replay
        return self._host_out.numpy().astype(np.float64)
