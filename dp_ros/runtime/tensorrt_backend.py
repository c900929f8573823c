"""TensorRT backend: engines built from the exported ONNX graphs, run on torch CUDA tensors.

Engines are build products cached next to the checkpoint (see ``export.build_dir``)
under a key of everything that makes them valid: GPU name and compute capability,
TensorRT version, precision, input shapes and the checkpoint's hash. A matching
engine is loaded; otherwise one is built (the time is logged) with a timing cache
shared by all builds on that GPU.

A chunk: the encoder engine once, then the denoiser engine K times, all enqueued with
``execute_async_v3`` on one torch CUDA stream, the DDIM updates as torch operations
on the same stream (no host synchronisation per step); optionally the whole chunk is
captured in a CUDA graph and replayed. The denoiser engine applies the inpainting
guidance itself (``export``: committed target, mask and the chunk's noise are bound
once per chunk, the step's noise level per step) and returns the guided sample that
the update continues.

Follows the TensorRT 10 Python API. TensorRT is imported only when this backend is
used; where it is missing, the backend reports itself unavailable.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from dp_ros.model.noise import commit_prefix
from dp_ros.runtime.export import DENOISER_INPUTS, DENOISER_OUTPUTS, GRAPH_VERSION, build_dir, export_onnx, input_names

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "fp32")


def unavailable(device: str) -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt Python package is not installed"
    if not device.startswith("cuda"):
        return f"TensorRT needs a CUDA device, not {device!r}"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


def engine_key(gpu: str, compute_capability: str, trt_version: str, precision: str,
               shapes: Mapping[str, tuple[int, ...]], checkpoint_hash: str) -> tuple[str, dict]:
    """(short key, the full description it hashes): engines are reused only on a match."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} must be one of {PRECISIONS}")
    desc = {
        "gpu": gpu,
        "compute_capability": compute_capability,
        "tensorrt": trt_version,
        "precision": precision,
        "shapes": {k: list(v) for k, v in sorted(shapes.items())},
        "checkpoint": checkpoint_hash,
        "graph_version": GRAPH_VERSION,
    }
    digest = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]
    return digest, desc


def cached_engine(directory: Path, part: str, key: str, desc: dict, build) -> tuple[bytes, bool]:
    """The serialized engine for ``part`` under ``key``: read from ``directory`` when its
    description matches, else ``build()`` it and store it. Returns (bytes, reused)."""
    path = directory / f"{part}-{key}.engine"
    meta = directory / f"{part}-{key}.json"
    if path.is_file() and meta.is_file() and json.loads(meta.read_text()) == desc:
        return path.read_bytes(), True
    t0 = time.perf_counter()
    data = build()
    log.info("built the TensorRT %s engine in %.1f s (%s)", part, time.perf_counter() - t0, desc["precision"])
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    meta.write_text(json.dumps(desc, indent=2))
    return data, False


def build_engine(onnx_path: Path, precision: str, timing_cache: Path) -> bytes:
    """ONNX -> serialized TensorRT engine (static shapes, FP16 or FP32)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 2 << 30)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    timing_cache.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return bytes(serialized)


_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "UINT8": torch.uint8,
                 "INT32": torch.int32, "INT64": torch.int64}


class _Engine:
    """One deserialized engine with torch tensors bound to every I/O tensor."""

    def __init__(self, runtime, file: "EngineFile", device: torch.device, expected: list[str]):
        import tensorrt as trt

        self.engine = runtime.deserialize_cuda_engine(file.data)
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not load the engine {file.path}; delete it to have it rebuilt")
        self.context = self.engine.create_execution_context()
        self.tensors: dict[str, torch.Tensor] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            kind = self.engine.get_tensor_dtype(name).name
            if kind not in _TORCH_DTYPES:
                raise RuntimeError(f"engine {file.path}: tensor {name!r} has type {kind}, which this backend "
                                   f"does not bind ({', '.join(_TORCH_DTYPES)})")
            self.tensors[name] = torch.zeros(shape, dtype=_TORCH_DTYPES[kind], device=device)
            self.context.set_tensor_address(name, self.tensors[name].data_ptr())
        missing = sorted(set(expected) - set(self.tensors))
        if missing:
            raise RuntimeError(f"engine {file.path} has no tensors named {missing} (it has {sorted(self.tensors)}); "
                               "it was not built from this checkpoint's export")
        self.inputs = [n for n in self.tensors if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]

    def run(self, stream: torch.cuda.Stream) -> None:
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")


@dataclass(frozen=True)
class EngineFile:
    part: str  # encoder | denoiser
    path: Path
    key: str
    reused: bool  # loaded from the cache, not built now
    data: bytes


def engine_shapes(cfg) -> dict[str, dict[str, tuple[int, ...]]]:
    """The static input shapes each engine is built for (part of its key)."""
    enc = {n: (1, cfg.n_obs_steps, c.height, c.width, 3) for n, c in zip(input_names(cfg), cfg.obs.cameras)}
    enc.update({f"state_{k.name}": (1, cfg.n_obs_steps, k.dim) for k in cfg.obs.lowdim})
    x = (1, cfg.horizon, cfg.action_dim)
    return {"encoder": enc, "denoiser": {"sample": x, "target": x, "mask": x, "noise": x, "level": (2,)}}


def prepare_engines(cfg, checkpoint: str | Path, device: torch.device, precision: str = "fp16") -> list[EngineFile]:
    """The encoder and denoiser engines for this checkpoint on this GPU: loaded from the
    build directory when their key matches, else exported, built and stored."""
    import tensorrt as trt

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} must be one of {PRECISIONS}")
    exported = export_onnx(checkpoint)
    props = torch.cuda.get_device_properties(device)
    directory = build_dir(checkpoint) / "tensorrt"
    directory.mkdir(parents=True, exist_ok=True)
    timing = directory / f"timing-{props.name.replace(' ', '_')}-{trt.__version__}.cache"
    engines = []
    shapes = engine_shapes(cfg)
    for part, onnx_path in (("encoder", exported.encoder), ("denoiser", exported.denoiser)):
        key, desc = engine_key(props.name, f"{props.major}.{props.minor}", trt.__version__, precision,
                               shapes[part], exported.checkpoint_hash)
        data, reused = cached_engine(directory, part, key, desc,
                                     lambda p=onnx_path: build_engine(p, precision, timing))
        log.info("TensorRT %s engine %s (%s)", part, "loaded from cache" if reused else "built", key)
        engines.append(EngineFile(part, directory / f"{part}-{key}.engine", key, reused, data))
    return engines


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, policy, device: str, checkpoint: str | Path, precision: str = "fp16",
                 cuda_graph: bool = True):
        import tensorrt as trt

        self.device = torch.device(device)
        self.policy = policy.to(self.device).eval()
        self.config = cfg = policy.config
        self.engine_files = prepare_engines(cfg, checkpoint, self.device, precision)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        expected = {"encoder": [*input_names(cfg), "cond"], "denoiser": [*DENOISER_INPUTS, *DENOISER_OUTPUTS]}
        self.engines = {f.part: _Engine(runtime, f, self.device, expected[f.part]) for f in self.engine_files}
        self.enc, self.den = self.engines["encoder"], self.engines["denoiser"]
        self.stream = torch.cuda.Stream(self.device)
        self.use_graph = cuda_graph
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._x = torch.zeros(1, cfg.horizon, cfg.action_dim, device=self.device)
        self._noise = torch.zeros_like(self._x)
        self._out = torch.zeros_like(self._x)
        self._host_out = torch.zeros(cfg.horizon, cfg.action_dim, pin_memory=self.device.type == "cuda")
        self._keys = [c.name for c in cfg.obs.cameras] + [k.name for k in cfg.obs.lowdim]

    def _chunk(self, steps: int) -> None:
        """Enqueue one chunk on self.stream: encoder, K denoiser steps, unnormalize."""
        plan = self.policy.plan(steps)
        with torch.cuda.stream(self.stream):
            self.enc.run(self.stream)
            self.den.tensors["cond"].copy_(self.enc.tensors["cond"])
            self.den.tensors["noise"].copy_(self._noise)
            self._x.copy_(self._noise)
            levels = plan.levels  # (K, 2)
            for i in range(plan.num_steps):
                self.den.tensors["sample"].copy_(self._x)
                self.den.tensors["timestep"].copy_(plan.timesteps[i:i + 1].float())
                self.den.tensors["level"].copy_(levels[i])
                self.den.run(self.stream)
                guided = self.den.tensors["guided"].float()
                self._x.copy_(plan.step(i, guided, self.den.tensors["model_output"].float()))
            fixed = commit_prefix(self._x, self.den.tensors["target"], self.den.tensors["mask"])
            self._out.copy_(self.policy.unnormalize_action(fixed))

    def _capture(self, steps: int) -> None:
        self._chunk(steps)  # TensorRT must run once before capture
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            self._chunk(steps)
        self._graphs[steps] = graph

    @torch.inference_mode()
    def prepare(self, steps: int) -> None:
        """Capture the CUDA graph for ``steps`` DDIM steps now: the policy node does it at
        start-up, never in its loop."""
        if self.use_graph and steps not in self._graphs:
            self._capture(steps)

    def _replay(self, steps: int) -> None:
        if not self.use_graph:
            self._chunk(steps)
            return
        if steps not in self._graphs:
            self._capture(steps)
        with torch.cuda.stream(self.stream):
            self._graphs[steps].replay()

    @torch.inference_mode()
    def predict(self, obs_window: Mapping[str, np.ndarray], num_inference_steps: int,
                noise: np.ndarray | None = None, guide=None) -> np.ndarray:
        with torch.cuda.stream(self.stream):
            for name, key in zip(input_names(self.config), self._keys):
                self.enc.tensors[name][0].copy_(torch.as_tensor(np.ascontiguousarray(obs_window[key])))
            if noise is None:
                noise = self.policy.initial_noise(1)[0]
            self._noise[0].copy_(torch.as_tensor(noise, dtype=torch.float32))
            target, mask = self.policy.guide_tensors(guide)
            self.den.tensors["target"].copy_(target)
            self.den.tensors["mask"].copy_(mask)
        self._replay(num_inference_steps)
        with torch.cuda.stream(self.stream):
            self._host_out.copy_(self._out[0], non_blocking=True)
        self.stream.synchronize()
        return self._host_out.numpy().astype(np.float64)
