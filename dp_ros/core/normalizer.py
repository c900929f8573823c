"""Min-max normalization to [-1, 1] from dataset statistics (numpy only).

Each key (``action``, ``joint_pos``, ...) keeps its per-dimension minimum and
maximum. A dimension whose range is (nearly) zero, for example a joint that never
moved in the demonstrations, maps its constant value to 0 with unit scale instead
of dividing by zero.
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


class Normalizer:
    """Per-key min-max statistics; normalizes to [-1, 1] and back."""

    def __init__(self, stats: Mapping[str, MinMax]):
        self.stats: dict[str, MinMax] = dict(stats)

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
        return {k: {"min": s.min.tolist(), "max": s.max.tolist()} for k, s in self.stats.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Normalizer":
        stats = {}
        for key, v in data.items():
            if not isinstance(v, Mapping) or set(v) != {"min", "max"}:
                raise ValueError(f"normalizer entry {key!r} must have exactly 'min' and 'max'")
            try:
                stats[key] = MinMax(np.asarray(v["min"], float), np.asarray(v["max"], float))
            except ValueError as exc:
                raise ValueError(f"normalizer entry {key!r}: {exc}") from None
        return cls(stats)
