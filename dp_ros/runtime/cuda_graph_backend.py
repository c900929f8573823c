"""PyTorch on CUDA with the whole chunk in one CUDA graph.

The encoder and every DDIM step are captured once per step count into a CUDA graph
over static input and output buffers; a chunk is: copy the observation and the
initial noise into the static buffers, replay, copy the actions out.

What makes it fast at batch 1 (each step measured on an H100, docs/backends.md):

- float16 (``half=True``, the default): the image encoders and the U-Net's trunk hold
  float16 weights (GroupNorm accumulates in float32). The U-Net's conditioning path
  (step embedding and every block's FiLM layer) stays float32 and runs once per chunk
  for all K steps as one batch, since it depends only on the step and the
  observation. The DDIM arithmetic is float32.
- the U-Net's convolutions as matrix products (``matmul_conv``): cuDNN transposed the
  weights on every call, half of the GPU time; the image encoders in channels-last.
- ``compile`` (default: where Triton is installed): ``torch.compile`` fuses each
  GroupNorm with its Mish and FiLM and each DDIM update into the step before capture.

The inpainting guidance of the seam mode ``inpaint`` (``noise.guide_sample``) is part
of the graph, on static target and mask buffers (zero: unguided), in float32.

The transformer denoiser runs under float16 autocast. ``half=False`` runs plain
float32 (no TF32). The parity tests hold the results to the FP16 and FP32 tolerances.
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from dp_ros.model.noise import commit_prefix, ddim_update, guide_sample
from dp_ros.runtime.backends import BackendUnavailable, ieee_fp32
from dp_ros.runtime.matmul_conv import use_matmul_convs

log = logging.getLogger(__name__)


def unavailable(device: str) -> str | None:
    if not device.startswith("cuda"):
        return f"CUDA graphs need a CUDA device, not {device!r}"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


def compile_unavailable() -> str | None:
    """Why torch.compile cannot generate GPU kernels here, or None."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return "torch.compile needs Triton for CUDA kernels, and it is not installed"
    return None


class CudaGraphBackend:
    name = "cuda_graph"

    def __init__(self, policy, device: str, checkpoint: str | Path | None = None, half: bool = True,
                 compile: bool | None = None):
        """``compile``: True, False, or None to compile when Triton is importable (logged)."""
        self.device = torch.device(device)
        self.policy = policy.to(self.device).eval()
        self.config = cfg = policy.config
        self.half = half
        self.film = cfg.denoiser == "unet"  # FiLM for all steps at once, float16 weights
        self._dtype = torch.float16 if half else torch.float32
        if self.film:
            if half:
                self._to_half()
            use_matmul_convs(self.policy.denoiser)
        if self.policy.obs_encoder.cameras is not None:
            self.policy.obs_encoder.cameras.to(memory_format=torch.channels_last)  # cuDNN's NHWC kernels
        self._encode, self._denoiser, self._step = self.policy.encode, self.policy.denoiser, self._film_step
        if compile is not False:
            why = compile_unavailable()
            if compile is None:
                compile = why is None
                log.info("cuda_graph: %s", "compiling with torch.compile" if compile else f"not compiling: {why}")
            elif why:
                raise BackendUnavailable(f"compile requested, but {why}")
        if compile:  # what the chunk calls: the encoder, and the U-Net step or the denoiser
            self._encode = torch.compile(self.policy.encode, dynamic=False)
            if self.film:
                self._step = torch.compile(self._film_step, dynamic=False)
            else:
                self._denoiser = torch.compile(self.policy.denoiser, dynamic=False)
        self.compiled = compile
        self._static = {c.name: torch.zeros(1, cfg.n_obs_steps, c.height, c.width, 3, dtype=torch.uint8,
                                            device=self.device) for c in cfg.obs.cameras}
        self._static.update({k.name: torch.zeros(1, cfg.n_obs_steps, k.dim, device=self.device)
                             for k in cfg.obs.lowdim})
        self._noise = torch.zeros(1, cfg.horizon, cfg.action_dim, device=self.device)
        self._target = torch.zeros_like(self._noise)  # inpainting guidance (normalized), static for the graph
        self._mask = torch.zeros_like(self._noise)
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._host_out = torch.zeros(cfg.horizon, cfg.action_dim, pin_memory=True)

    def _to_half(self) -> None:
        """Image encoders and the U-Net trunk to float16; the conditioning path stays float32."""
        if self.policy.obs_encoder.cameras is not None:
            self.policy.obs_encoder.cameras.half()
        unet = self.policy.denoiser
        unet.half()
        unet.diffusion_step_encoder.float()
        for block in unet.res_blocks():
            block.cond_encoder.float()

    def _film_step(self, x: torch.Tensor, films: list[torch.Tensor], coefficients: tuple[torch.Tensor, ...],
                   prediction_type: str, clip: float | None) -> torch.Tensor:
        """One DDIM step of the U-Net with its FiLM given; x and the result in float32."""
        out = self.policy.denoiser(x.to(self._dtype), None, None, films=films)
        return ddim_update(x, out.float(), *coefficients, prediction_type, clip)

    def _chunk(self, steps: int) -> torch.Tensor:
        plan = self.policy.plan(steps)
        if self.film:
            cond = self._encode(self._static).float()
            k = plan.num_steps
            films = [f.to(self._dtype) for f in self.policy.denoiser.films(plan.timesteps, cond.expand(k, -1))]
            x = self._noise
            for i in range(k):
                x = self._guide(x, plan, i)
                x = self._step(x, [f[i:i + 1] for f in films], plan.coefficients(i), plan.prediction_type,
                               plan.clip)
            return self.policy.unnormalize_action(commit_prefix(x, self._target, self._mask))
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.half, cache_enabled=False):
            cond = self._encode(self._static)
            x = self._noise
            for i in range(plan.num_steps):
                x = self._guide(x, plan, i)
                out = self._denoiser(x, plan.timesteps[i].expand(1), cond)
                x = plan.step(i, x, out.float())
        return self.policy.unnormalize_action(commit_prefix(x, self._target, self._mask))

    def _guide(self, x: torch.Tensor, plan, i: int) -> torch.Tensor:
        """The inpainting guidance before step i, in float32 on the static buffers."""
        return guide_sample(x, self._noise, self._target, self._mask, plan.sqrt_abar[i],
                            plan.sqrt_one_minus[i])

    def _graph(self, steps: int):
        if steps not in self._graphs:
            with ieee_fp32() if not self.half else contextlib.nullcontext():
                self._capture(steps)
        return self._graphs[steps]

    def _capture(self, steps: int) -> None:
        t0 = time.perf_counter()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up outside the graph (compilation, cuDNN autotuning, allocator)
                self._chunk(steps)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self._chunk(steps)
        self._graphs[steps] = (graph, out)
        log.info("captured a CUDA graph for %d DDIM steps in %.1f s%s", steps, time.perf_counter() - t0,
                 " (including torch.compile)" if self.compiled else "")

    @torch.inference_mode()
    def prepare(self, steps: int) -> None:
        """Capture the graph for ``steps`` DDIM steps now (seconds; with compile, tens of
        seconds the first time): the policy node does it at start-up, never in its loop."""
        self._graph(steps)

    @torch.inference_mode()
    def predict(self, obs_window: Mapping[str, np.ndarray], num_inference_steps: int,
                noise: np.ndarray | None = None, guide=None) -> np.ndarray:
        graph, out = self._graph(num_inference_steps)
        target, mask = self.policy.guide_tensors(guide)
        self._target.copy_(target)
        self._mask.copy_(mask)
        for key, buf in self._static.items():
            buf[0].copy_(torch.as_tensor(np.ascontiguousarray(obs_window[key])), non_blocking=False)
        if noise is None:
            noise = self.policy.initial_noise(1)[0]
        self._noise[0].copy_(torch.as_tensor(noise, dtype=torch.float32))
        graph.replay()
        self._host_out.copy_(out[0])  # synchronizes: the copy waits for the replay
        return self._host_out.numpy().astype(np.float64)
