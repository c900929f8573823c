"""The inference worker's view of time (no ROS): free-running, or stepped by a lockstep driver.

The policy node's worker thread asks this object what time it is, reports whether it
is idle or busy, and waits on it. Its code is the same in both modes:

- free-running (a real arm, ``sim.launch.py``): ``now()`` is the node's clock and
  ``wait`` sleeps (in short slices) on an event that ``wake()`` (enable, reset) sets;
- stepped (``dp_ros sim eval``, the tests): a lockstep driver hands the worker one
  instant at a time with ``turn(t)``, after every message of that instant has been
  delivered, and advances simulated time only once ``settled(t)`` says the worker is
  done with it: idle, or busy with a chunk that is due later (the driver stops at
  that time until the chunk has been published). So a chunk's window and its
  publication time depend only on simulated time, never on how fast this CPU is.
"""
from __future__ import annotations

import math
import threading
from typing import Callable


class WorkerClock:
    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._cond = threading.Condition()
        self._woken = False
        self._stepped = False
        self._turn = -math.inf  # stepped: the instant handed to the worker
        self._idle_at = -math.inf  # the instant at which the worker last found nothing to do
        self._idle_until = -math.inf  # and the time before which it will have nothing to do
        self._due: float | None = None  # busy: when its result is due

    # ---- the worker's side ----

    def now(self) -> float:
        with self._cond:
            return self._now()

    def _now(self) -> float:
        return self._turn if self._stepped else self._clock()

    def idle(self, now: float, until: float = -math.inf) -> None:
        """Nothing to do at ``now``, nor before ``until`` unless woken (a stepped worker is
        then not handed the instants in between)."""
        with self._cond:
            self._due = None
            if not self._woken:
                self._idle_at, self._idle_until = now, until
            self._cond.notify_all()

    def busy(self, due: float) -> None:
        """Working on a result that is published no earlier than ``due``."""
        with self._cond:
            self._due = due
            self._idle_at = self._idle_until = -math.inf
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        """Until woken, ``timeout`` seconds have passed (free-running) or the next instant (stepped)."""
        with self._cond:
            if self._stepped:  # the next instant after the one it last looked at that matters
                seen, until = self._idle_at, self._idle_until
                self._cond.wait_for(lambda: self._woken or (self._turn > seen and self._turn >= until)
                                    or not self._stepped, timeout=1.0)
            elif not self._woken:
                self._cond.wait(timeout)
            self._woken = False
            # It is about to look at the time again: what it said before no longer holds, and a
            # driver must not take it as settled (woken by ~/enable, it was "idle until never").
            self._idle_at = self._idle_until = -math.inf

    def wait_until(self, t: float, stop: threading.Event) -> None:
        """Until the time is ``t`` (the earliest a result may be published) or ``stop`` is set."""
        while not stop.is_set():
            with self._cond:
                now = self._now()
                if now >= t:
                    return
                if self._stepped:
                    self._cond.wait_for(lambda: self._turn >= t or not self._stepped or stop.is_set(), timeout=0.1)
                else:
                    self._cond.wait(min(t - now, 0.05))

    # ---- everyone else ----

    def wake(self) -> None:
        """Something changed (enabled, reset, stopping): look again."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    # ---- the lockstep driver's side ----

    def step(self) -> None:
        """From now on the worker acts only at instants handed to it by ``turn``."""
        with self._cond:
            self._stepped = True
            self._cond.notify_all()

    def release(self) -> None:
        """Back to free-running (the driver is done)."""
        with self._cond:
            self._stepped = False
            self._cond.notify_all()

    def turn(self, t: float) -> None:
        """Instant ``t``: every message stamped up to it has been delivered."""
        with self._cond:
            self._turn = max(self._turn, t)
            self._cond.notify_all()

    def settled(self, t: float) -> float | None:
        """None while the worker still has to act at ``t``; else how far simulated time
        may advance: to its result's due time while it is busy, without limit when idle."""
        with self._cond:
            return self._settled(t)

    def wait_settled(self, t: float, timeout: float) -> float | None:
        """``settled(t)`` once it is not None, or None after ``timeout`` seconds of wall time."""
        with self._cond:
            self._cond.wait_for(lambda: self._settled(t) is not None, timeout=timeout)
            return self._settled(t)

    def _settled(self, t: float) -> float | None:
        if self._due is not None:
            return self._due if self._due > t else None
        return math.inf if (self._idle_at >= t or self._idle_until > t) and not self._woken else None
