"""ONNX Runtime backend: the exported encoder and one-step denoiser, DDIM in numpy.

Providers: TensorRT and CUDA when this onnxruntime build has them and a GPU is asked
for, otherwise the CPU. The DDIM update uses the same per-step constants as the
PyTorch policy (``noise.ddim_plan``), in float32. The inpainting guidance runs inside
the denoiser graph (``export``), which returns the guided sample the update continues.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np

from dp_ros.core.seams import guide_arrays
from dp_ros.model.noise import ddim_plan, ddim_update
from dp_ros.runtime.export import export_onnx, input_names

log = logging.getLogger(__name__)


def unavailable(device: str) -> str | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if device.startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"this onnxruntime has no CUDA provider (it has {ort.get_available_providers()})"
    return None


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, policy, device: str, checkpoint: str | Path):
        import onnxruntime as ort

        self.config = cfg = policy.config
        exported = export_onnx(checkpoint)
        log.info("onnx export %s (%.1f s)", "reused" if exported.reused else "written", exported.seconds)
        if device.startswith("cuda"):
            idx = int(device.split(":")[1]) if ":" in device else 0
            providers = [("CUDAExecutionProvider", {"device_id": idx}), "CPUExecutionProvider"]
            if "TensorrtExecutionProvider" in ort.get_available_providers():
                providers.insert(0, ("TensorrtExecutionProvider", {"device_id": idx}))
        else:
            providers = ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: constant folding warns about every Mish node
        self.encoder = ort.InferenceSession(str(exported.encoder), opts, providers=providers)
        self.denoiser = ort.InferenceSession(str(exported.denoiser), opts, providers=providers)
        self.providers = self.denoiser.get_providers()
        self.device = device
        self._names = input_names(cfg)
        self._keys = [c.name for c in cfg.obs.cameras] + [k.name for k in cfg.obs.lowdim]
        a = policy.normalizer.stats["action"]
        self._scale, self._offset = a.scale.astype(np.float32), a.offset.astype(np.float32)
        self._plans = {}
        self._rng = np.random.default_rng()

    def _plan(self, steps: int):
        if steps not in self._plans:
            p = ddim_plan(self.config.noise, steps)
            self._plans[steps] = {k: getattr(p, k).numpy() for k in (
                "timesteps", "sqrt_abar", "sqrt_one_minus", "sqrt_abar_prev", "sqrt_one_minus_prev", "levels")}
            self._plans[steps]["clip"] = p.clip
        return self._plans[steps]

    def encode(self, obs_window: Mapping[str, np.ndarray]) -> np.ndarray:
        feeds = {}
        for name, key in zip(self._names, self._keys):
            x = np.asarray(obs_window[key])
            x = x.astype(np.uint8 if name.startswith("image_") else np.float32, copy=False)
            feeds[name] = np.ascontiguousarray(x[None])  # (T_o, ...) -> (1, T_o, ...)
        return self.encoder.run(["cond"], feeds)[0]

    def denoise(self, cond: np.ndarray, noise: np.ndarray, steps: int, guide=None) -> np.ndarray:
        p = self._plan(steps)
        x = noise = noise.astype(np.float32)
        target, mask = (a[None] for a in guide_arrays(guide, self._scale, self._offset, *noise.shape[1:]))
        prediction_type = self.config.noise.prediction_type
        for i, k in enumerate(p["timesteps"]):
            out, x = self.denoiser.run(["model_output", "guided"], {
                "sample": x, "timestep": np.array([k], np.float32), "cond": cond, "target": target, "mask": mask,
                "noise": noise, "level": p["levels"][i]})
            x = ddim_update(x, out, p["sqrt_abar"][i], p["sqrt_one_minus"][i], p["sqrt_abar_prev"][i],
                            p["sqrt_one_minus_prev"][i], prediction_type, p["clip"])
        return x + mask * (target - x)  # noise.commit_prefix: the fixed actions exactly, the soft ones blended

    def predict(self, obs_window: Mapping[str, np.ndarray], num_inference_steps: int,
                noise: np.ndarray | None = None, guide=None) -> np.ndarray:
        cfg = self.config
        shape = (cfg.horizon, cfg.action_dim)
        noise = self._rng.standard_normal(shape, dtype=np.float32) if noise is None else np.asarray(noise)
        x = self.denoise(self.encode(obs_window), noise.reshape(1, *shape), num_inference_steps, guide)
        return ((x[0] - self._offset) / self._scale).astype(np.float64)
