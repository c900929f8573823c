"""ONNX export of a checkpoint: the encoder and a one-step denoiser, static shapes.

    encoder.onnx    image_<camera> uint8 (1, T_o, H, W, 3) for each camera,
                    state_<key> float32 (1, T_o, D) for each low-dim key
                    -> cond float32: (1, T_o*D_obs) for the U-Net, (1, T_o, D_obs) for the transformer
    denoiser.onnx   sample float32 (1, T_p, A), timestep float32 (1,), cond,
                    target, mask, noise float32 (1, T_p, A), level float32 (2,)
                    -> model_output float32 (1, T_p, A), guided float32 (1, T_p, A)

The denoiser graph includes the inpainting guidance of the seam mode ``inpaint``
(``noise.guide_sample``): before the network, the sample is blended with the committed
actions ``target`` (normalized) noised to the step's level (``level`` = sqrt(abar),
sqrt(1 - abar)) with the chunk's initial ``noise``, by ``mask``; ``guided`` is that
blended sample, which the DDIM update continues from. An all-zero mask leaves the
sample unchanged, so one graph serves guided and unguided chunks on every backend.

The encoder graph contains the center crop, the [0, 1] scaling and the low-dim
normalization, so a backend feeds raw observations. The DDIM loop stays outside the
graph: one denoiser engine is called K times with the per-step constants of
``noise.ddim_plan``. That keeps ``num_inference_steps`` a run-time parameter (an
unrolled graph would bake one step count in) and costs one launch per step; the GPU
backends remove that cost by capturing the whole loop in a CUDA graph. The measured
comparison is in docs/backends.md.

Build products (ONNX files, TensorRT engines) live in a build directory next to the
checkpoint (``<checkpoint>/.build``), or under ``$XDG_CACHE_HOME/dp_ros`` when the
checkpoint's directory is read-only, and are keyed by the checkpoint's hash.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from dp_ros.model.checkpoint import checkpoint_hash, load_checkpoint
from dp_ros.model.noise import guide_sample

log = logging.getLogger(__name__)

ENCODER_ONNX = "encoder.onnx"
DENOISER_ONNX = "denoiser.onnx"
OPSET = 18
GRAPH_VERSION = 2  # 2: the denoiser takes the inpainting guidance inputs
DENOISER_INPUTS = ["sample", "timestep", "cond", "target", "mask", "noise", "level"]
DENOISER_OUTPUTS = ["model_output", "guided"]


class EncoderGraph(nn.Module):
    """Positional inputs (cameras, then low-dim keys, in config order) -> conditioning."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy
        self.keys = [c.name for c in policy.config.obs.cameras] + [k.name for k in policy.config.obs.lowdim]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.policy.encode(dict(zip(self.keys, inputs)))


class DenoiserGraph(nn.Module):
    """One guided denoiser step before its DDIM update, with a float timestep (friendlier
    to engines than int64)."""

    def __init__(self, policy):
        super().__init__()
        self.denoiser = policy.denoiser

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor, noise: torch.Tensor, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        guided = guide_sample(sample, noise, target, mask, level[0], level[1])
        return self.denoiser(guided, timestep, cond), guided


def input_names(cfg) -> list[str]:
    return [f"image_{c.name}" for c in cfg.obs.cameras] + [f"state_{k.name}" for k in cfg.obs.lowdim]


def example_inputs(policy, device="cpu") -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Encoder and denoiser example inputs with the static export shapes."""
    cfg = policy.config
    enc = [torch.zeros(1, cfg.n_obs_steps, c.height, c.width, 3, dtype=torch.uint8, device=device)
           for c in cfg.obs.cameras]
    enc += [torch.zeros(1, cfg.n_obs_steps, k.dim, device=device) for k in cfg.obs.lowdim]
    with torch.no_grad():
        cond = EncoderGraph(policy).to(device)(*enc)
    x = torch.zeros(1, cfg.horizon, cfg.action_dim, device=device)
    den = (x, torch.zeros(1, device=device), cond, x.clone(), x.clone(), x.clone(), torch.ones(2, device=device))
    return tuple(enc), den


def build_dir(checkpoint: str | Path) -> Path:
    """Where build products of this checkpoint go (created if needed)."""
    ckpt = Path(checkpoint).resolve()
    local = ckpt / ".build"
    try:
        local.mkdir(exist_ok=True)
        probe = local / ".write_test"
        probe.write_text("")
        probe.unlink()
        return local
    except OSError:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dp_ros" / "builds"
        d = base / checkpoint_hash(ckpt)[:16]
        d.mkdir(parents=True, exist_ok=True)
        return d


@dataclass(frozen=True)
class ExportResult:
    encoder: Path
    denoiser: Path
    checkpoint_hash: str
    seconds: float
    reused: bool


def export_onnx(checkpoint: str | Path, out_dir: str | Path | None = None, force: bool = False) -> ExportResult:
    """Export (or reuse, when the checkpoint hash matches) encoder.onnx and denoiser.onnx."""
    ckpt = Path(checkpoint)
    digest = checkpoint_hash(ckpt)
    out = Path(out_dir) if out_dir else build_dir(ckpt) / "onnx"
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "export.json"
    enc_path, den_path = out / ENCODER_ONNX, out / DENOISER_ONNX
    if not force and stamp.is_file() and enc_path.is_file() and den_path.is_file():
        meta = json.loads(stamp.read_text())
        if meta.get("checkpoint_hash") == digest and meta.get("opset") == OPSET and \
                meta.get("graph_version") == GRAPH_VERSION:
            return ExportResult(enc_path, den_path, digest, 0.0, True)
    t0 = time.perf_counter()
    policy = load_checkpoint(ckpt, "cpu")
    enc_in, den_in = example_inputs(policy)
    names = input_names(policy.config)
    buf = io.StringIO()
    with torch.no_grad(), contextlib.redirect_stdout(buf):  # the exporter narrates to stdout
        _export(EncoderGraph(policy), enc_in, enc_path.with_suffix(".tmp"), names, ["cond"])
        _export(DenoiserGraph(policy), den_in, den_path.with_suffix(".tmp"), DENOISER_INPUTS, DENOISER_OUTPUTS)
    log.debug("%s", buf.getvalue())
    os.replace(enc_path.with_suffix(".tmp"), enc_path)
    os.replace(den_path.with_suffix(".tmp"), den_path)
    stamp.write_text(json.dumps({"checkpoint_hash": digest, "opset": OPSET, "graph_version": GRAPH_VERSION,
                                 "inputs": names,
                                 "torch": torch.__version__}, indent=2))
    return ExportResult(enc_path, den_path, digest, time.perf_counter() - t0, False)


def _export(module: nn.Module, args, path: Path, inputs: list[str], outputs: list[str]) -> None:
    torch.onnx.export(module.eval(), args, str(path), input_names=inputs, output_names=outputs,
                      opset_version=OPSET, dynamo=True, external_data=False)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
