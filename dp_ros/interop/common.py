"""What every policy importer shares: refusing what cannot be represented, rewriting
state dicts onto this project's module names, and writing the checkpoint only once
everything has been checked (nothing is written on any error)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from dp_ros.core.normalizer import Normalizer
from dp_ros.model.checkpoint import CONFIG_FILE, save_checkpoint
from dp_ros.model.config import PolicyConfig
from dp_ros.model.policy import build_policy


class InteropError(ValueError):
    """Input that cannot be converted; the message names the file, field and value."""


def refuse(where: str, field: str, value: Any, why: str) -> InteropError:
    return InteropError(f"{where}: {field} = {value!r} is not supported: {why}")


def joint_names(given: str | None, n: int, what: str) -> tuple[tuple[str, ...], bool]:
    """``--joint-names a,b,c`` for ``n`` action dimensions, or placeholders ``joint_1..n``
    (second value: whether they are placeholders)."""
    if not given:
        return tuple(f"joint_{i + 1}" for i in range(n)), True
    names = tuple(s.strip() for s in given.split(",") if s.strip())
    if len(names) != n:
        raise InteropError(f"--joint-names gives {len(names)} names, but {what} has {n} action dimensions")
    return names, False


def rename(state: Mapping[str, torch.Tensor], rules: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Apply regex substitutions, in order, to every key."""
    out = {}
    for key, value in state.items():
        new = key
        for pattern, repl in rules:
            new = re.sub(pattern, repl, new)
        out[new] = value
    return out


def film_bias_only(state: dict[str, torch.Tensor], prefix: str = "denoiser.") -> dict[str, torch.Tensor]:
    """FiLM without scale (out = h + bias(cond)) as FiLM with scale: the scale rows of each
    cond_encoder are zero weights and bias 1, so scale is exactly 1 for every input."""
    for key in [k for k in state if k.startswith(prefix) and k.endswith("cond_encoder.1.weight")]:
        w, b = state[key], state[key[:-len("weight")] + "bias"]
        state[key] = torch.cat([torch.zeros_like(w), w])
        state[key[:-len("weight")] + "bias"] = torch.cat([torch.ones_like(b), b])
    return state


def permute_global_cond(state: dict[str, torch.Tensor], step_embed_dim: int, n_obs_steps: int,
                        perm: np.ndarray, prefix: str = "denoiser.") -> dict[str, torch.Tensor]:
    """Reorder the observation features each FiLM layer reads: the source concatenates each
    step's features in its order, we in ours (cameras, then low-dim keys). ``perm[j]`` is
    the source index of our feature j within one step; the step embedding comes first."""
    d = len(perm)
    if np.array_equal(perm, np.arange(d)):
        return state
    cols = np.concatenate([np.arange(step_embed_dim)] +
                          [step_embed_dim + t * d + perm for t in range(n_obs_steps)])
    for key in [k for k in state if k.startswith(prefix) and k.endswith("cond_encoder.1.weight")]:
        w = state[key]
        if w.shape[1] == len(cols):  # otherwise build_checked names the mismatch with the others
            state[key] = w[:, torch.as_tensor(cols)]
    return state


def build_checked(cfg: PolicyConfig, normalizer: Normalizer, state: Mapping[str, torch.Tensor], source: str):
    """Our policy with ``state`` loaded; every missing, unexpected or misshapen tensor is
    named (the source's architecture is not the configuration we derived from it)."""
    try:
        cfg = cfg.validate()
        policy = build_policy(cfg, normalizer)
    except ValueError as exc:
        raise InteropError(f"{source}: the converted configuration is not valid here: {exc}") from None
    expected = policy.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        parts = [f"{n} {what} (first: {items[:3]})" for n, what, items in (
            (len(missing), "tensors missing", missing), (len(unexpected), "tensors not understood", unexpected),
            (len(wrong), "tensors of the wrong shape", wrong)) if items]
        raise InteropError(f"{source}: the weights do not match the architecture its config describes: "
                           + "; ".join(parts))
    policy.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return policy.eval()


def check_out(out: str | Path, force: bool) -> Path:
    out = Path(out)
    if out.exists() and not force:
        if out.is_file() or any(out.iterdir()):
            raise InteropError(f"{out} exists; choose a new directory or pass --force to replace a checkpoint there")
    if out.exists() and force and out.is_dir() and any(out.iterdir()) and not (out / CONFIG_FILE).is_file():
        raise InteropError(f"{out} exists and is not a checkpoint; refusing to replace it")
    return out


def write(policy, out: Path, metadata: dict[str, Any]) -> Path:
    return save_checkpoint(policy, out, metadata=metadata)
