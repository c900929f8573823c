"""Continuous execution between chunks (numpy only): when to start the next inference,
where it takes over, and what each seam strategy does with the chunk that is running.

A chunk made from the window ending at t_obs has T_p actions; action i is meant for
``t_obs + (i - (T_o-1)) * dt + offset`` (``core.chunking``). It executes T_a of them
and publishes ``bridge_steps`` more behind them, so a late successor degrades to
"keeps going on the old plan" instead of "stops"::

    chunk N       |a1 a2 a3 a4 a5 a6 a7 a8|b9 b10 b11 ...|     (T_a = 8, then the bridge)
                                       handover
    inference N+1      start |---- latency ----| publish + execution latency = switch
    chunk N+1                                  |c.. (takes over at the switch)

- **Early inference** (``next_start``): the next inference starts so that its chunk
  takes over by the running chunk's *handover*, the time of its last executed action:
  handover minus a high percentile of recent inference times (``LatencyEstimate``),
  the execution latency and a margin. Its planned switch time is the handover (or
  later, if that is already out of reach when it starts); a chunk that arrives after
  its planned switch while the old plan still runs is dropped (``planner``).
- **Seam modes**, the parameter ``seam_mode``:
  - ``naive``: the new chunk as predicted (the speed filter limits its first segment);
  - ``ensemble``: temporal ensembling (Zhao et al. 2023, ACT): each published action
    is the weighted mean of every stored chunk's prediction for its time, weights
    ``exp(-decay * k)`` with k = 0 for the oldest chunk (``Ensemble``);
  - ``inpaint``: the denoiser continues the committed plan (``inpaint_guide``): the
    actions due up to the planned switch (the delay prefix) are fixed to what the
    controller is commanded to do then, with weight 1, and the weight falls linearly
    to 0 over ``blend_steps`` further actions while the old plan has points there.
    The guided DDIM step itself is ``model.noise.guide_sample``.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from dp_ros.core.command import CommandLog

SEAM_MODES = ("naive", "ensemble", "inpaint")


def seam_mode_problem(mode: str) -> str | None:
    if mode not in SEAM_MODES:
        return f"seam_mode {mode!r} must be one of {', '.join(SEAM_MODES)}"
    return None


class LatencyEstimate:
    """Recent inference durations (seconds from a chunk's start to its result), and a
    high percentile of them. Before the first one it reports ``initial``."""

    def __init__(self, initial: float = 0.0, window: int = 20):
        if not initial >= 0:
            raise ValueError(f"initial latency estimate {initial!r} must be >= 0")
        self.initial = float(initial)
        self._recent: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> None:
        if np.isfinite(seconds) and seconds >= 0:
            self._recent.append(float(seconds))

    def value(self, percentile: float) -> float:
        if not self._recent:
            return self.initial
        return float(np.percentile(np.asarray(self._recent), percentile))

    def __len__(self) -> int:
        return len(self._recent)


def next_start(last_start: float, handover: float | None, estimate: float, execution_latency: float,
               margin: float, min_gap: float) -> float:
    """When the next inference should start: so that its chunk, ``estimate`` seconds of
    inference plus the execution latency and a margin later, takes over by ``handover``
    (the running chunk's last executed action); at least ``min_gap`` after the last
    start (one control period: the window must have moved on). ``handover`` None (no
    chunk running: starting up, holding, or the last chunk was refused): ``min_gap``."""
    earliest = last_start + min_gap
    if handover is None:
        return earliest
    return max(handover - estimate - execution_latency - margin, earliest)


def action_times(t_obs: float, dt: float, n_obs_steps: int, horizon: int, offset: float = 0.0) -> np.ndarray:
    """(T_p,) the time each predicted action is meant for: action T_o-1 at t_obs + offset."""
    return t_obs + offset + (np.arange(horizon) - (n_obs_steps - 1)) * dt


@dataclass(frozen=True)
class Guide:
    """What the guided denoiser continues: one target per action (joint units) and its weight."""

    targets: np.ndarray  # (T_p, J)
    mask: np.ndarray  # (T_p,) in [0, 1]: 1 fixed to the target, 0 free

    def __post_init__(self) -> None:
        targets = np.asarray(self.targets, dtype=np.float64)
        mask = np.asarray(self.mask, dtype=np.float64).reshape(-1)
        if targets.ndim != 2 or mask.shape != (targets.shape[0],):
            raise ValueError(f"a guide needs (T_p, J) targets and (T_p,) weights; got {targets.shape}, {mask.shape}")
        if not (np.all(np.isfinite(targets)) and np.all((mask >= 0) & (mask <= 1))):
            raise ValueError("guide targets must be finite and weights in [0, 1]")
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "mask", mask)

    @property
    def fixed(self) -> int:
        """Actions fixed with weight 1 (the delay prefix)."""
        return int(np.count_nonzero(self.mask >= 1.0))

    @classmethod
    def none(cls, horizon: int, joints: int) -> "Guide":
        """No guidance (every weight 0): the guided denoiser then equals the plain one."""
        return cls(np.zeros((horizon, joints)), np.zeros(horizon))


def guide_arrays(guide: Guide | None, scale: np.ndarray, offset: np.ndarray, horizon: int,
                 joints: int) -> tuple[np.ndarray, np.ndarray]:
    """What a backend feeds its guided denoiser: the targets normalized like actions
    (``targets * scale + offset``) and the weights repeated per joint, both (T_p, J)
    float32; all zero for None (no guidance). ValueError for a guide of another shape."""
    if guide is None:
        return np.zeros((horizon, joints), np.float32), np.zeros((horizon, joints), np.float32)
    if guide.targets.shape != (horizon, joints):
        raise ValueError(f"guide has targets {guide.targets.shape} and mask {guide.mask.shape}; expected "
                         f"{(horizon, joints)} and {(horizon,)}")
    target = (guide.targets * scale + offset).astype(np.float32)
    return target, np.repeat(guide.mask.astype(np.float32)[:, None], joints, axis=1)


def soft_mask(times: np.ndarray, t_switch: float, plan_end: float, blend_steps: int) -> np.ndarray:
    """(T_p,) weights: 1 for actions due up to ``t_switch``; then, while the old plan has
    points (up to ``plan_end``), falling linearly to 0 over ``blend_steps`` actions; 0 after."""
    times = np.asarray(times, dtype=np.float64)
    w = np.zeros(times.shape)
    prefix = times <= t_switch + 1e-9
    w[prefix] = 1.0
    after = np.flatnonzero(~prefix)
    for k, i in enumerate(after[:blend_steps]):
        if times[i] > plan_end + 1e-9:
            break
        w[i] = 1.0 - (k + 1) / (blend_steps + 1)
    return w


def inpaint_guide(times: np.ndarray, commands: CommandLog, t_switch: float, blend_steps: int) -> Guide | None:
    """The guide for a chunk whose actions are meant for ``times`` (T_p,), taking over at
    ``t_switch``: each target is the controller's setpoint at that time under the
    commands sent so far (the last one held after its end), weighted by ``soft_mask``.
    Actions before the first command are free. None when no command is known."""
    current = commands.current
    if current is None:
        return None
    targets, known = [], []
    for t in np.asarray(times, dtype=np.float64):
        q = commands.at(float(t))
        known.append(q is not None)
        targets.append(q if q is not None else current.positions[-1])
    mask = soft_mask(times, t_switch, current.end_time, blend_steps) * np.asarray(known, dtype=np.float64)
    if not mask.any():
        return None
    return Guide(np.stack(targets), mask)


class Ensemble:
    """Temporal ensembling of overlapping chunks: the predictions of recent chunks
    (raw, as the model made them) and their weighted mean at a new chunk's times."""

    def __init__(self, keep: int = 8):
        self._chunks: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=keep)

    def clear(self) -> None:
        self._chunks.clear()

    def __len__(self) -> int:
        return len(self._chunks)

    def blend(self, times: np.ndarray, positions: np.ndarray, decay: float, now: float) -> np.ndarray:
        """Store this chunk's ``positions`` (n, J) for ``times`` (n,) and return, for each
        time, the weighted mean over every stored chunk that predicted it (linear between
        a chunk's own times); chunks wholly in the past (before ``now``) are forgotten."""
        times = np.asarray(times, dtype=np.float64)
        positions = np.asarray(positions, dtype=np.float64)
        while self._chunks and self._chunks[0][0][-1] < now:
            self._chunks.popleft()
        self._chunks.append((times, positions))
        total = np.zeros_like(positions)
        weight = np.zeros((len(times), 1))
        for k, (t_k, q_k) in enumerate(self._chunks):  # k = 0: the oldest
            covers = ((times >= t_k[0] - 1e-9) & (times <= t_k[-1] + 1e-9))[:, None]  # (n, 1)
            q = np.stack([np.interp(times, t_k, q_k[:, j]) for j in range(q_k.shape[1])], axis=1)  # (n, J)
            w = np.exp(-decay * k) * covers
            total += w * q
            weight += w
        return total / weight  # the newest chunk covers every one of its own times
