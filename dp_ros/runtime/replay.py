"""Recorded actions in place of a policy: the runner behind ``dp_ros sim replay``.

A ``ReplayRunner`` has the runner's interface (``config``, ``predict``, ...), so the
policy node times its "chunks" exactly as it times predicted ones (receding horizon,
latency, safety filter, controller). Instead of denoising, it returns for an
observation window ending at t_obs the recorded actions meant for the chunk's times,
``t_obs + (i - (T_o-1)) * dt`` for i = 0..T_p-1: action T_o-1 belongs to t_obs, as
for a trained policy (docs/timing.md). Recorded time runs from ``start(t0)`` on: the
action recorded at episode time tau is meant for t0 + tau (+ ``shift`` periods: -1
executes every action one period earlier, +1 one period later). Before ``start`` and
after the episode's end it holds the first or last action.

If the recording, the node and the controller agree on what "the action at t" means,
the replayed arm retraces the recorded joint positions best at shift 0.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dp_ros.model.config import LowdimConfig, ObsConfig, PolicyConfig
from dp_ros.runtime.backends import Prediction

JOINTS = "joint_pos"


class ReplayRunner:
    backend_name = "replay"
    device = "cpu"
    needs_prepare = False

    def __init__(self, actions: np.ndarray, timestamps: np.ndarray, joint_names, dt: float, source: str | Path,
                 n_obs_steps: int = 2, horizon: int = 16, n_action_steps: int = 8, shift: int = 0):
        self.actions = np.asarray(actions, dtype=np.float64)  # (T, J)
        t = np.asarray(timestamps, dtype=np.float64)
        if self.actions.ndim != 2 or t.shape != (len(self.actions),) or len(t) == 0:
            raise ValueError(f"actions {self.actions.shape} and timestamps {t.shape} must be (T, J) and (T,)")
        if np.any(np.diff(t) <= 0):
            raise ValueError("timestamps must increase")
        self.episode_times = t - t[0]  # (T,) episode time of each recorded action
        self.config = PolicyConfig(
            joint_names=tuple(joint_names), dt=float(dt),
            obs=ObsConfig(lowdim=(LowdimConfig(JOINTS, self.actions.shape[1]),)),
            n_obs_steps=n_obs_steps, horizon=horizon, n_action_steps=n_action_steps).validate()
        self.path = Path(source)
        self.shift = shift
        self.prepared: set[int] = set()
        self.t0: float | None = None

    @property
    def duration(self) -> float:
        return float(self.episode_times[-1])

    def start(self, t0: float, shift: int | None = None) -> None:
        """Play the episode from time ``t0`` on (node clock), shifted by ``shift`` periods."""
        self.t0 = t0
        if shift is not None:
            self.shift = shift

    def stop(self) -> None:
        self.t0 = None

    def actions_at(self, times: np.ndarray) -> np.ndarray:
        """(n, J): the recorded action meant for each time (linear between recorded ones)."""
        if self.t0 is None:
            return np.repeat(self.actions[:1], len(times), axis=0)
        tau = np.asarray(times, dtype=np.float64) - self.t0 - self.shift * self.config.dt
        return np.stack([np.interp(tau, self.episode_times, self.actions[:, j])
                         for j in range(self.actions.shape[1])], axis=1)

    def predict(self, obs_window, num_inference_steps: int | None = None, noise=None,
                t_obs: float | None = None, guide=None) -> Prediction:
        """The recorded actions for the window ending at ``t_obs`` (``noise`` and ``guide`` ignored)."""
        if t_obs is None:
            raise ValueError("a replay needs the window's time t_obs")
        t0 = time.perf_counter()
        cfg = self.config
        times = t_obs + (np.arange(cfg.horizon) - (cfg.n_obs_steps - 1)) * cfg.dt  # action T_o-1 at t_obs
        return Prediction(self.actions_at(times), time.perf_counter() - t0)

    def warm_up(self) -> float:
        return 0.0

    def prepare(self, steps: int) -> float:
        self.prepared.add(steps)
        return 0.0

    def unprepared(self, steps: int) -> str | None:
        return None

