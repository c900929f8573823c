"""Inference backends: one contract, registered by name.

Every backend turns one observation window into a chunk of T_p actions in joint
units: encode once, run the DDIM steps, unnormalize. Every backend takes the seam
mode ``inpaint``'s guidance (``core.seams.Guide``: committed actions and their
weights) into its accelerated path; without one, the weights are zero and the chunk is
the unguided one. ``auto`` picks the best one that
is available and says which; an explicitly requested backend that is unavailable is a
start-up error, never a silent fallback.

| name          | runs                                              | device      |
| ------------- | ------------------------------------------------- | ----------- |
| `tensorrt`    | TensorRT engines (FP16 default), CUDA graph       | cuda        |
| `cuda_graph`  | PyTorch, FP16 autocast, whole chunk in a CUDA graph | cuda      |
| `onnxruntime` | exported ONNX graphs (CUDA/TensorRT providers if present) | cpu, cuda |
| `pytorch`     | eager PyTorch FP32, the reference                 | cpu, cuda   |

``auto`` tries them in that order on the resolved device. The accelerated backends
run the diffusion head's encoder and denoiser; a regression (MSE baseline) checkpoint
runs on `pytorch` only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from dp_ros.core.seams import Guide, soft_mask
from dp_ros.model.checkpoint import load_checkpoint
from dp_ros.model.config import PolicyConfig

log = logging.getLogger(__name__)


class BackendUnavailable(RuntimeError):
    """The requested backend or device cannot run here; the message says why."""


@dataclass
class Prediction:
    actions: np.ndarray  # (T_p, J) float64, joint units
    seconds: float  # wall time of the inference


@contextlib.contextmanager
def ieee_fp32():
    """Plain float32 on CUDA: no TF32 in cuDNN convolutions (on by default in PyTorch
    from Ampere on, about 1e-3 off in the actions) or in matrix products."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class TorchBackend:
    """Eager PyTorch in plain float32; the reference every other backend is held against."""

    name = "pytorch"

    def __init__(self, policy, device: str, checkpoint=None):
        self.device = device
        self.policy = policy.to(device).eval()

    def predict(self, obs_window: Mapping[str, np.ndarray], num_inference_steps: int,
                noise: np.ndarray | None = None, guide=None) -> np.ndarray:
        with ieee_fp32():
            return self.policy.predict_chunk(obs_window, noise=noise, num_inference_steps=num_inference_steps,
                                             guide=guide)


def _torch_available(device: str) -> str | None:
    if device == "cpu":
        return None
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return f"device {device!r} requested but torch sees no CUDA device"
        return None
    return f"unknown device {device!r}; use cpu, cuda, cuda:N or auto"


def _lazy(module: str, attr: str) -> Callable[..., object]:
    def resolve():
        import importlib

        return getattr(importlib.import_module(f"dp_ros.runtime.{module}"), attr)

    def get(*args, **kwargs):
        return resolve()(*args, **kwargs)
    get.resolve = resolve
    return get


# name -> (why it is unavailable on a device, or None; constructor(policy, device, checkpoint))
BACKENDS: dict[str, tuple[Callable[[str], str | None], Callable[..., object]]] = {
    "tensorrt": (_lazy("tensorrt_backend", "unavailable"), _lazy("tensorrt_backend", "TensorRTBackend")),
    "cuda_graph": (_lazy("cuda_graph_backend", "unavailable"), _lazy("cuda_graph_backend", "CudaGraphBackend")),
    "onnxruntime": (_lazy("onnxruntime_backend", "unavailable"), _lazy("onnxruntime_backend", "OnnxRuntimeBackend")),
    "pytorch": (_torch_available, TorchBackend),
}
AUTO_ORDER = ("tensorrt", "cuda_graph", "onnxruntime", "pytorch")


def compile_option(value) -> bool | None:
    """The ``torch_compile`` setting: True or "true", False or "false", "auto" (None:
    compile where Triton is installed)."""
    text = str(value).strip().lower()
    choices = {"auto": None, "true": True, "false": False}
    if text not in choices:
        raise ValueError(f"torch_compile must be auto, true or false, not {value!r}")
    return choices[text]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_model_path(model_path: str, share_dir: str | None = None) -> Path:
    """A checkpoint directory: the path as given, else ``<share>/models/<model_path>``."""
    p = Path(model_path).expanduser()
    if p.is_dir():
        return p.resolve()
    if share_dir and not p.is_absolute():
        bundled = Path(share_dir) / "models" / model_path
        if bundled.is_dir():
            return bundled.resolve()
    where = f" (nor under {share_dir}/models)" if share_dir and not p.is_absolute() else ""
    raise FileNotFoundError(f"model_path {model_path!r}: no checkpoint directory there{where}")


class PolicyRunner:
    """A loaded checkpoint and the backend that runs it."""

    def __init__(self, config: PolicyConfig, backend, backend_name: str, device: str, path: Path):
        self.config = config
        self.backend = backend
        self.backend_name = backend_name
        self.device = device
        self.path = path
        self.prepared: set[int] = set()

    @property
    def needs_prepare(self) -> bool:
        """Whether a step count must be prepared (a CUDA graph captured) before it runs
        without a stall; the backends that need it have a ``prepare(steps)``."""
        return hasattr(self.backend, "prepare")

    def prepare(self, steps: int) -> float:
        """Build what ``steps`` DDIM steps need (CUDA graph capture) now, outside the control
        loop; returns the seconds it took."""
        t0 = time.perf_counter()
        if self.needs_prepare and steps not in self.prepared:
            self.backend.prepare(steps)
        self.prepared.add(steps)
        return time.perf_counter() - t0

    def unprepared(self, steps: int) -> str | None:
        """Why changing to ``steps`` while running would stall control, or None."""
        if not self.needs_prepare or steps in self.prepared:
            return None
        return (f"{steps} DDIM steps are not prepared on backend {self.backend_name} (capturing them takes "
                f"seconds and would stall control); prepared: {sorted(self.prepared)}. List the step counts "
                "to switch between in the parameter prepared_inference_steps")

    def warm_up(self, repeats: int = 2) -> float:
        """Run the policy on a blank observation so the first real chunk does not pay for
        allocations and lazy initialisation. Returns the last run's seconds."""
        from dp_ros.model.presets import example_window

        obs = example_window(self.config)
        return min(self.predict(obs).seconds for _ in range(repeats))

    def predict(self, obs_window: Mapping[str, np.ndarray], num_inference_steps: int | None = None,
                noise: np.ndarray | None = None, t_obs: float | None = None, guide=None) -> Prediction:
        """One chunk for the window ending at ``t_obs`` (a model does not need the time;
        ``runtime.replay`` does); ``guide``: ``core.seams.Guide`` (seam mode inpaint)."""
        steps = self.config.noise.num_inference_steps if num_inference_steps is None else num_inference_steps
        t0 = time.perf_counter()
        actions = self.backend.predict(obs_window, steps, noise, guide)
        return Prediction(np.asarray(actions, dtype=np.float64), time.perf_counter() - t0)


class BackendMismatch(RuntimeError):
    """A backend's chunk differs from the PyTorch FP32 reference's beyond the tolerance."""


@dataclass(frozen=True)
class ReferenceCheck:
    max_diff: float  # the largest difference, as a fraction of that joint's range in the training data
    tolerance: float
    seconds: float


def check_against_reference(runner: PolicyRunner, tolerance: float, seed: int = 0) -> ReferenceCheck | None:
    """Run ``runner`` and the PyTorch FP32 reference (a second copy of the checkpoint, on
    the same device) on one synthetic observation with the same initial noise and the
    same inpainting guidance (random committed actions, the first few fixed, then a soft
    mask, then free: both the guided and the free path are checked), and raise
    ``BackendMismatch`` when the chunks differ by more than ``tolerance`` of a joint's
    range or the backend's is not finite. Catches what a backend's build can get wrong on
    a machine it was never tested on (an engine out of FP16 range, a broken provider);
    ``None`` for the reference itself."""
    from dp_ros.model.checkpoint import read_config

    if runner.backend_name == "pytorch":
        return None
    if not tolerance > 0:
        raise ValueError(f"the reference check's tolerance must be > 0, not {tolerance!r}")
    t0 = time.perf_counter()
    cfg, normalizer = runner.config, read_config(runner.path)[1]
    rng = np.random.default_rng(seed)
    obs = {}
    for c in cfg.obs.cameras:
        obs[c.name] = rng.integers(0, 256, (cfg.n_obs_steps, c.height, c.width, 3), dtype=np.uint8)
    for k in cfg.obs.lowdim:
        s = normalizer.stats[k.name]
        obs[k.name] = rng.uniform(s.min, s.max, (cfg.n_obs_steps, k.dim))
    noise = rng.standard_normal((cfg.horizon, cfg.action_dim)).astype(np.float32)
    a = normalizer.stats["action"]
    times = np.arange(cfg.horizon, dtype=np.float64)
    guide = Guide(rng.uniform(a.min, a.max, (cfg.horizon, cfg.action_dim)),
                  soft_mask(times, float(cfg.n_obs_steps + 1), float(cfg.horizon), 3))
    steps = cfg.noise.num_inference_steps
    got = runner.predict(obs, steps, noise, guide=guide).actions
    policy = load_checkpoint(runner.path, runner.device)
    policy.config = cfg  # the runner's sampling settings (timestep_spacing), not only the file's
    reference = TorchBackend(policy, runner.device)
    expected = reference.predict(obs, steps, noise, guide)
    del reference
    if torch.device(runner.device).type == "cuda":
        torch.cuda.empty_cache()
    # As a fraction of each joint's range in the training data ([-1, 1] after normalization).
    diff = np.abs(got - expected) * normalizer.stats["action"].scale / 2.0
    finite = bool(np.all(np.isfinite(got)))
    worst = float(np.max(diff)) if finite else float("inf")
    check = ReferenceCheck(worst, tolerance, time.perf_counter() - t0)
    if not worst <= tolerance:
        joint = cfg.joint_names[int(np.argmax(np.nan_to_num(diff, nan=np.inf))) % cfg.action_dim]
        what = (f"its chunk differs by {worst:.3g} of the training range of joint {joint!r} (tolerance {tolerance:g})"
                if finite else f"its chunk has NaN or infinite values (joint {joint!r})")
        raise BackendMismatch(f"backend {runner.backend_name!r} on {runner.device} does not reproduce the PyTorch "
                              f"FP32 reference: {what}; use another backend, for example pytorch")
    return check


def _unavailable(name: str, device: str, head: str) -> str | None:
    if name != "pytorch" and head != "diffusion":
        return f"it runs diffusion policies only, and this checkpoint's head is {head!r}: use pytorch"
    return BACKENDS[name][0](device)


def _constructor_options(backend: str) -> set[str]:
    """The keyword options a backend's constructor takes beyond (policy, device, checkpoint)."""
    import inspect

    ctor = BACKENDS[backend][1]
    cls = ctor.resolve() if hasattr(ctor, "resolve") else ctor
    return set(list(inspect.signature(cls.__init__).parameters)[4:])


def load_runner(model_path: str | Path, backend: str = "auto", device: str = "auto",
                timestep_spacing: str | None = None, **options) -> PolicyRunner:
    """Load a checkpoint onto the requested backend and device, or raise saying why not.
    ``timestep_spacing`` overrides the checkpoint's DDIM spacing (None keeps it).
    ``options`` go to the backend's constructor (``compile`` for cuda_graph, ``precision``
    for tensorrt)."""
    from dp_ros.model.checkpoint import read_config

    path = Path(model_path)
    device = resolve_device(device)
    head = read_config(path)[0].head
    if backend == "auto":
        for name in AUTO_ORDER:
            if _unavailable(name, device, head) is None:
                backend = name
                break
        else:
            raise BackendUnavailable(f"no backend can run on device {device!r}")
        log.info("backend auto: picked %s on %s", backend, device)
    if backend not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {backend!r}; known: auto, {', '.join(BACKENDS)}")
    why = _unavailable(backend, device, head)
    if why:
        raise BackendUnavailable(f"backend {backend!r} is unavailable on {device}: {why}")
    accepted = _constructor_options(backend)
    for key in [k for k in options if k not in accepted]:
        log.info("option %s=%r does not apply to backend %s; ignored", key, options.pop(key), backend)
    policy = load_checkpoint(path)
    if timestep_spacing and policy.config.head == "diffusion":
        noise = dataclasses.replace(policy.config.noise, timestep_spacing=timestep_spacing)
        noise.validate()  # ValueError naming the allowed spacings
        policy.config = dataclasses.replace(policy.config, noise=noise)
    impl = BACKENDS[backend][1](policy, device, path, **options)
    return PolicyRunner(policy.config, impl, backend, device, path)
