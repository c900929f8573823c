"""Seeded stand-in weights for parity fixtures, shared by the fixture scripts and the tests.

A ResNet-18 alone is 44 MB in float32: too large to commit once per fixture. So a fixture
commits the library's weight manifest (every tensor's name, shape and dtype, read from the
file the library saved) and the weights are these values, which the generation script
loads into the real library before it computes the expected outputs, and the test
writes into a file of the same layout before it imports it. numpy only: no project or
library code, so both sides compute the same numbers.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np


def seeded_tensor(name: str, shape, dtype: str, seed: int) -> np.ndarray:
    """A deterministic tensor for parameter ``name``: scaled like a trained network's, so
    activations stay in range through deep stacks (He-like for weights, near 1 for norm
    scales, positive running variances, small biases)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    shape = tuple(int(s) for s in shape)
    leaf = name.rsplit(".", 1)[-1]
    if dtype.startswith("int") or leaf == "num_batches_tracked":
        return np.zeros(shape, dtype=np.int64)
    if leaf == "running_var":
        x = rng.uniform(0.5, 1.5, shape)
    elif leaf == "running_mean":
        x = rng.normal(0.0, 0.1, shape)
    elif len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        x = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
    elif leaf == "weight":  # 1-D weights belong to GroupNorm/BatchNorm (Linear and conv weights are >= 2-D)
        x = 1.0 + rng.normal(0.0, 0.1, shape)
    else:
        x = rng.normal(0.0, 0.1, shape)
    return x.astype(np.float32)


def seeded_state(manifest: dict, seed: int) -> dict[str, np.ndarray]:
    """``manifest``: {name: {"shape": [...], "dtype": "float32"}} -> {name: array}. Buffers
    that hold fixed data (``pos_grid``) are left out: the library computes them."""
    return {k: seeded_tensor(k, v["shape"], v["dtype"], seed) for k, v in sorted(manifest.items())
            if k.rsplit(".", 1)[-1] not in FIXED_BUFFERS}


FIXED_BUFFERS = {"pos_grid", "pos_x", "pos_y"}


def restore_stripped_checkpoint(fixture: Path, out: Path) -> Path:
    """A reference .ckpt whose seeded storages were cut out (``storages.json``: zip entry ->
    which state dict, tensor name, shape, dtype) -> the full file at ``out``, the storages
    written back from the seeds in ``meta.json`` (model: seed, EMA model: ema_seed)."""
    import json
    import zipfile

    meta = json.loads((fixture / "meta.json").read_text())
    seeds = {"model": meta["seed"], "ema_model": meta["ema_seed"]}
    cut = json.loads((fixture / "storages.json").read_text())
    with zipfile.ZipFile(fixture / "latest.ckpt") as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        prefix = src.namelist()[0].split("/")[0]
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename))
        for key, t in cut.items():
            data = seeded_tensor(t["name"], t["shape"], t["dtype"], seeds[t["dict"]])
            dst.writestr(f"{prefix}/data/{key}", data.tobytes())
    return out


def fixture_windows(io_path, observation_map: dict, expected: str = "expected"):
    """A parity fixture's samples in dp_ros's layout: (observation window, initial noise,
    the library's chunk). Images go from the libraries' (T_o, 3, H, W) to (T_o, H, W, 3)."""
    io = np.load(io_path)
    for i in range(io["noise"].shape[0]):
        obs = {}
        for theirs, ours in observation_map.items():
            x = io[theirs][i]
            obs[ours] = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x
        yield obs, io["noise"][i], io[expected][i]

