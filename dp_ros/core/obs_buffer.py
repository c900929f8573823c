"""Stamped observation history, aligned across streams by header stamps (numpy only).

For the newest time t_obs at which every stream has data (the oldest of the streams'
newest stamps; the policy node) or a given time (the recorder's tick, T_o = 1), the
window samples T_o steps at ``t_obs - (T_o-1-k)*dt``, k = 0..T_o-1.
Each stream takes its newest message stamped at or before that time; streams marked
``interpolate`` (joint positions) interpolate linearly between the two messages
around it. Stamps are message stamps, never arrival times.

The window is refused, with reasons, when a stream has no data, when a stream's
newest message is older than its maximum age (stale), or when the history does not
reach back far enough yet. Messages whose stamp goes backwards, repeats, or lies in
the future beyond a tolerance are rejected on arrival and counted.

Values are opaque (for example a raw image message) unless the stream interpolates,
in which case they are 1-D float arrays. The buffer is thread-safe: sensor callbacks
push while the inference thread takes windows.
"""
from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True)
class StreamSpec:
    name: str
    max_age: float  # seconds; newer than this or the observation is stale
    interpolate: bool = False


@dataclass
class Window:
    """The result of asking for an observation window."""

    ready: bool
    t_obs: float = math.nan
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    values: dict[str, list[Any]] = field(default_factory=dict)
    stamps: dict[str, list[float]] = field(default_factory=dict)  # stamp used per step
    reasons: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # names of stale or missing streams


class _Stream:
    def __init__(self, spec: StreamSpec):
        self.spec = spec
        self.stamps: deque[float] = deque()
        self.values: deque[Any] = deque()
        self.received = 0
        self.rejected = 0

    def prune(self, keep_after: float) -> None:
        # Keep one message at or before keep_after so sampling there still works.
        while len(self.stamps) > 1 and self.stamps[1] <= keep_after:
            self.stamps.popleft()
            self.values.popleft()

    def at(self, t: float) -> tuple[Any, float] | None:
        stamps = self.stamps
        i = bisect.bisect_right(stamps, t) - 1  # newest stamp <= t
        if i < 0:
            return None
        if not self.spec.interpolate or i == len(stamps) - 1 or stamps[i] == t:
            return self.values[i], stamps[i]
        t0, t1 = stamps[i], stamps[i + 1]
        w = (t - t0) / (t1 - t0)
        return (1.0 - w) * self.values[i] + w * self.values[i + 1], t


class ObservationBuffer:
    """Per-stream stamped histories and the aligned T_o-step window."""

    def __init__(
        self,
        streams: list[StreamSpec],
        n_obs_steps: int,
        dt: float,
        future_tolerance: float = 0.05,
        extra_history: float = 1.0,
    ):
        if n_obs_steps < 1 or not dt > 0:
            raise ValueError("n_obs_steps must be >= 1 and dt > 0")
        names = [s.name for s in streams]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"stream names must be unique and non-empty: {names}")
        self._streams = {s.name: _Stream(s) for s in streams}
        self.n_obs_steps = n_obs_steps
        self.dt = dt
        self.future_tolerance = future_tolerance
        self.extra_history = extra_history
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self._streams)

    def set_max_age(self, name: str, max_age: float) -> None:
        with self._lock:
            s = self._streams[name]
            s.spec = StreamSpec(name, max_age, s.spec.interpolate)

    def push(self, name: str, stamp: float, value: Any, now: float) -> str | None:
        """Add a message. Returns None, or the reason it was rejected."""
        stream = self._streams[name]
        if not math.isfinite(stamp) or stamp <= 0.0:
            reason = f"{name}: message has no valid header stamp ({stamp})"
        elif stamp > now + self.future_tolerance:
            reason = f"{name}: stamp {stamp - now:+.3f} s in the future (clocks not synchronized?)"
        else:
            reason = None
        with self._lock:
            stream.received += 1
            if reason is None and stream.stamps and stamp <= stream.stamps[-1]:
                back = stream.stamps[-1] - stamp
                reason = (f"{name}: stamp went backwards by {back:.3f} s" if back > 0
                          else f"{name}: repeated stamp {stamp:.6f}")
            if reason is not None:
                stream.rejected += 1
                return reason
            stream.stamps.append(stamp)
            stream.values.append(value)
            horizon = (self.n_obs_steps - 1) * self.dt + stream.spec.max_age + self.extra_history
            stream.prune(stamp - horizon)
        return None

    def clear(self) -> None:
        with self._lock:
            for s in self._streams.values():
                s.stamps.clear()
                s.values.clear()

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """Per stream: (received, rejected, held)."""
        with self._lock:
            return {n: (s.received, s.rejected, len(s.stamps)) for n, s in self._streams.items()}

    def newest(self, name: str) -> tuple[float, Any] | None:
        """(stamp, value) of a stream's newest message, or None."""
        with self._lock:
            s = self._streams[name]
            return (s.stamps[-1], s.values[-1]) if s.stamps else None

    def newest_stamps(self) -> dict[str, float | None]:
        with self._lock:
            return {n: (s.stamps[-1] if s.stamps else None) for n, s in self._streams.items()}

    def motion(self, name: str, span: float) -> tuple[float, np.ndarray, np.ndarray] | None:
        """(stamp, value, velocity) of an interpolated stream's newest message; the velocity
        is the change over the last ``span`` seconds of history (zero with one message)."""
        with self._lock:
            s = self._streams[name]
            if not s.stamps:
                return None
            t, q = s.stamps[-1], s.values[-1]
            h = min(span, t - s.stamps[0])
            if h <= 1e-6:
                return t, q, np.zeros_like(q)
            return t, q, (q - s.at(t - h)[0]) / h

    def window(self, now: float, at: float | None = None) -> Window:
        """The aligned window ending at ``at`` (default: the newest common time, the oldest
        of the streams' newest stamps), or the reasons there is none. The policy node asks
        for the default, the recorder for its tick: one sampling rule for both."""
        with self._lock:
            reasons, stale = [], []
            for name, s in self._streams.items():
                if not s.stamps:
                    reasons.append(f"{name}: no data")
                    stale.append(name)
                    continue
                age = now - s.stamps[-1]
                if age > s.spec.max_age:
                    reasons.append(f"{name}: stale, newest message {age:.3f} s old > max {s.spec.max_age:.3f} s")
                    stale.append(name)
            if reasons:
                return Window(ready=False, reasons=reasons, stale=stale)
            t_obs = min(s.stamps[-1] for s in self._streams.values()) if at is None else at
            k = np.arange(self.n_obs_steps)
            times = t_obs - (self.n_obs_steps - 1 - k) * self.dt
            values: dict[str, list[Any]] = {}
            stamps: dict[str, list[float]] = {}
            for name, s in self._streams.items():
                vals, used = [], []
                for t in times:
                    got = s.at(float(t))
                    if got is None:
                        reasons.append(
                            f"{name}: history starts at {s.stamps[0]:.3f}, "
                            f"the window needs {times[0]:.3f}"
                            + (f" (waiting for {self.n_obs_steps} steps)" if at is None else "")
                        )
                        break
                    vals.append(got[0])
                    used.append(got[1])
                values[name], stamps[name] = vals, used
            if reasons:
                return Window(ready=False, t_obs=t_obs, reasons=reasons)
            return Window(ready=True, t_obs=t_obs, times=times, values=values, stamps=stamps)


def stack_window(values: Mapping[str, list[Any]]) -> dict[str, np.ndarray]:
    """Per-stream lists of T_o arrays -> stacked (T_o, ...) arrays."""
    return {k: np.stack(v) for k, v in values.items()}
