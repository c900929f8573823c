"""Motion measured on stamped joint paths (numpy only): one way to compute every figure."""
from __future__ import annotations

import numpy as np


def rms_error(times: np.ndarray, positions: np.ndarray, ref_times: np.ndarray, ref_positions: np.ndarray) -> float:
    """Root mean square over joints and reference samples of the difference between a
    recorded path (``times``, ``positions`` (n, J), interpolated) and the reference."""
    times = np.asarray(times, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    ref = np.asarray(ref_positions, dtype=np.float64)
    ref_times = np.asarray(ref_times, dtype=np.float64)
    if len(times) < 2 or ref_times[0] < times[0] or ref_times[-1] > times[-1]:
        raise ValueError("the measured path must cover the reference times")
    got = np.stack([np.interp(ref_times, times, positions[:, j]) for j in range(positions.shape[1])], axis=1)
    return float(np.sqrt(np.mean((got - ref) ** 2)))
