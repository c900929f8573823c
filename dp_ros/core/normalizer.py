"""Min-max normalization to [-1, 1] from dataset statistics (numpy only).

Each key (``action``, ``joint_pos``, ...) keeps its per-dimension minimum and
maximum. A dimension whose range is (nearly) zero, for example a joint that never
moved in the demonstrations, maps its constant value to 0 with unit scale instead
of dividing by zero.

A key may instead hold an explicit affine map (``Affine``: scale and offset), which is
how a policy imported from another library keeps that library's normalization
exactly (mean/std, its own epsilon); for a camera key it is per RGB channel, applied
to the image in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

# Ranges below this are treated as constant.
MIN_RANGE = 1e-4


@dataclass(frozen=True)
class MinMax:
    """Statistics for one key and the affine map ``y = x * scale + offset`` they define."""

    min: np.ndarray  # (D,) float64
    max: np.ndarray  # (D,) float64

    def __post_init__(self) -> None:
        lo = np.asarray(self.min, dtype=np.float64).reshape(-1)
        hi = np.asarray(self.max, dtype=np.float64).reshape(-1)
        if lo.shape != hi.shape:
            raise ValueError(f"min has {lo.size} dimensions but max has {hi.size}")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError("normalizer statistics contain NaN or infinite values")
        if np.any(hi < lo):
            raise ValueError("normalizer statistics have max < min")
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", hi)

    @property
    def dim(self) -> int:
        return int(self.min.size)

    @property
    def scale(self) -> np.ndarray:
        rng = self.max - self.min
        return np.where(rng < MIN_RANGE, 1.0, 2.0 / np.maximum(rng, MIN_RANGE))

    @property
    def offset(self) -> np.ndarray:
        rng = self.max - self.min
        centered = -1.0 - self.min * self.scale
        return np.where(rng < MIN_RANGE, -self.min, centered)


@dataclass(frozen=True)
class Affine:
    """An explicit map ``y = x * scale + offset`` (scale non-zero), for normalizations
    that are not this project's min-max. ``min``/``max``: what maps to -1 and +1."""

    scale: np.ndarray  # (D,) float64
    offset: np.ndarray  # (D,) float64

    def __post_init__(self) -> None:
        scale = np.asarray(self.scale, dtype=np.float64).reshape(-1)
        offset = np.asarray(self.offset, dtype=np.float64).reshape(-1)
        if scale.shape != offset.shape:
            raise ValueError(f"scale has {scale.size} dimensions but offset has {offset.size}")
        if not (np.all(np.isfinite(scale)) and np.all(np.isfinite(offset))):
            raise ValueError("normalizer scale or offset contains NaN or infinite values")
        if np.any(scale == 0):
            raise ValueError("normalizer scale has a zero entry; the map cannot be inverted")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "offset", offset)

    @property
    def dim(self) -> int:
        return int(self.scale.size)

    @property
    def min(self) -> np.ndarray:
        return np.minimum((-1.0 - self.offset) / self.scale, (1.0 - self.offset) / self.scale)

    @property
    def max(self) -> np.ndarray:
        return np.maximum((-1.0 - self.offset) / self.scale, (1.0 - self.offset) / self.scale)


class Normalizer:
    """Per-key statistics (min-max, or an explicit affine map); normalizes to [-1, 1] and back."""

    def __init__(self, stats: Mapping[str, MinMax | Affine]):
        self.stats: dict[str, MinMax | Affine] = dict(stats)

    @classmethod
    def fit(cls, data: Mapping[str, np.ndarray]) -> "Normalizer":
        """Statistics over the leading axes of each array, ``(..., D)``."""
        stats = {}
        for key, arr in data.items():
            a = np.asarray(arr, dtype=np.float64)
            if a.ndim < 1 or a.shape[-1] == 0:
                raise ValueError(f"normalizer key {key!r}: expected (..., D) data, got {a.shape}")
            a = a.reshape(-1, a.shape[-1])
            if a.shape[0] == 0:
                raise ValueError(f"normalizer key {key!r}: no samples to compute statistics")
            stats[key] = MinMax(a.min(axis=0), a.max(axis=0))
        return cls(stats)

    def __contains__(self, key: str) -> bool:
        return key in self.stats

    def _get(self, key: str, x: np.ndarray) -> MinMax:
        if key not in self.stats:
            raise KeyError(f"normalizer has no statistics for {key!r}; it has {sorted(self.stats)}")
        s = self.stats[key]
        if x.shape[-1] != s.dim:
            raise ValueError(f"{key!r} has {x.shape[-1]} dimensions; its statistics have {s.dim}")
        return s

    def normalize(self, key: str, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        s = self._get(key, x)
        return x * s.scale + s.offset

    def unnormalize(self, key: str, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        s = self._get(key, y)
        return (y - s.offset) / s.scale

    def to_dict(self) -> dict[str, Any]:
        return {k: ({"scale": s.scale.tolist(), "offset": s.offset.tolist()} if isinstance(s, Affine)
                    else {"min": s.min.tolist(), "max": s.max.tolist()}) for k, s in self.stats.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Normalizer":
        stats = {}
        for key, v in data.items():
            if not isinstance(v, Mapping) or set(v) not in ({"min", "max"}, {"scale", "offset"}):
                raise ValueError(f"normalizer entry {key!r} must have exactly 'min' and 'max', "
                                 "or exactly 'scale' and 'offset'")
            try:
                if "min" in v:
                    stats[key] = MinMax(np.asarray(v["min"], float), np.asarray(v["max"], float))
                else:
                    stats[key] = Affine(np.asarray(v["scale"], float), np.asarray(v["offset"], float))
            except ValueError as exc:
                raise ValueError(f"normalizer entry {key!r}: {exc}") from None
        return cls(stats)
