"""Checkpoints: a directory with ``config.json`` and ``model.safetensors``, never a pickle.

    <checkpoint>/
      config.json         format_version, policy config (shapes, horizons, dt, camera
                          names and sizes, joint names, architecture), normalizer
                          statistics, free-form metadata, weights_dtype
      model.safetensors   weights (tensors only; loading runs no code)

Weights are stored in float32, or in float16 to halve the file (``weights_dtype``,
for example for a model bundled with the package); they are always loaded as float32.

Saving writes into a temporary sibling directory and renames it into place, so a
crash never leaves a half-written checkpoint under the final name.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from dp_ros.core.normalizer import Normalizer
from dp_ros.model.config import PolicyConfig
from dp_ros.model.policy import build_policy

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message says why."""


WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def save_checkpoint(policy, path: str | Path, metadata: dict[str, Any] | None = None,
                    weights_dtype: str = "float32") -> Path:
    """Write ``policy`` to the directory ``path`` (replacing an existing checkpoint there)."""
    path = Path(path)
    if weights_dtype not in WEIGHT_DTYPES:
        raise CheckpointError(f"weights_dtype {weights_dtype!r} must be one of {sorted(WEIGHT_DTYPES)}")
    if path.exists() and not (path / CONFIG_FILE).is_file():
        if not path.is_dir() or any(path.iterdir()):
            raise CheckpointError(f"{path} exists and is not a checkpoint; refusing to overwrite it")
    config = {
        "format_version": FORMAT_VERSION,
        "policy": policy.config.to_dict(),
        "normalizer": policy.normalizer.to_dict(),
        "metadata": dict(metadata or {}),
        "weights_dtype": weights_dtype,
    }
    dtype = WEIGHT_DTYPES[weights_dtype]
    state = {k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
             for k, v in policy.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        save_file(state, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n")
        _fsync_dir(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _fsync_dir(d: Path) -> None:
    for f in d.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def read_config(path: str | Path) -> tuple[PolicyConfig, Normalizer, dict[str, Any]]:
    """Read and validate ``config.json`` without loading weights."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} is not a directory")
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise CheckpointError(f"checkpoint {path} has no {CONFIG_FILE}")
    try:
        raw = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{cfg_file} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{cfg_file} must hold a JSON object")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg_file} has format_version {version!r}; this dp_ros reads version {FORMAT_VERSION}"
        )
    unknown = sorted(set(raw) - {"format_version", "policy", "normalizer", "metadata", "weights_dtype"})
    if unknown:
        raise CheckpointError(f"{cfg_file} has unknown top-level keys {unknown}")
    if raw.get("weights_dtype", "float32") not in WEIGHT_DTYPES:
        raise CheckpointError(f"{cfg_file}: weights_dtype {raw.get('weights_dtype')!r} must be one of "
                              f"{sorted(WEIGHT_DTYPES)}")
    try:
        cfg = PolicyConfig.from_dict(raw.get("policy")).validate()
        normalizer = Normalizer.from_dict(raw.get("normalizer") or {})
    except ValueError as exc:
        raise CheckpointError(f"{cfg_file}: {exc}") from None
    return cfg, normalizer, dict(raw.get("metadata") or {})


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild the policy stored in ``path`` on ``device``, in eval mode."""
    path = Path(path)
    cfg, normalizer, metadata = read_config(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {path} has no {WEIGHTS_FILE}")
    try:
        policy = build_policy(cfg, normalizer)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from None
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{weights} could not be read: {exc}") from None
    # float16 files load as float32 (the dtype the model computes in).
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    expected = policy.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (first: {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors (first: {unexpected[:3]})")
        if wrong:
            parts.append(f"shape mismatch in {len(wrong)} tensors (first: {wrong[:3]})")
        raise CheckpointError(f"{weights} does not match its config: " + "; ".join(parts))
    policy.load_state_dict(state, strict=True)
    policy.metadata = metadata
    return policy.to(device).eval()


def checkpoint_hash(path: str | Path) -> str:
    """sha256 over the config and the weights: what engines built from it are keyed by."""
    path = Path(path)
    h = hashlib.sha256()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        h.update(name.encode())
        with open(path / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
