"""From a predicted chunk to timed joint targets: receding horizon with latency compensation.

The model predicts T_p actions for the observation window ending at t_obs. Action
T_o-1 belongs to t_obs, so the executable slice is T_o-1 ... T_o-1+T_a-1 and its i-th
action is meant for ``t_obs + i*dt + offset``. By the time inference has finished,
some of those times have passed: every action due before ``now + latency`` is
dropped, and the rest are published. Behind the slice, up to ``bridge_steps`` more
predicted actions are published as a bridge (``core.seams``): the next chunk should
take over before them, and if it is late the arm goes on along this chunk's plan. If
nothing is left the chunk was over budget and nothing is published.

    predicted  a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 ...     (T_o = 2, T_a = 8, bridge 2)
    slice         a1 a2 a3 a4 a5 a6 a7 a8|a9 a10
    time          t  t+dt ...          handover           (t = t_obs + offset)
                  |--due--|  now + latency
    published           a3 a4 a5 a6 a7 a8 a9 a10
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TimedChunk:
    origin: float  # t_obs + offset: the time of the slice's first action
    times: np.ndarray  # (n,) absolute times of the kept actions, increasing
    positions: np.ndarray  # (n, J) joint targets
    dropped: int  # actions of the slice dropped because they were due
    handover: float = float("nan")  # time of the last executed action (T_a-th); bridge actions follow it


def schedule_chunk(
    actions: np.ndarray,
    t_obs: float,
    dt: float,
    n_obs_steps: int,
    n_action_steps: int,
    now: float,
    latency: float = 0.0,
    offset: float = 0.0,
    bridge_steps: int = 0,
) -> TimedChunk | None:
    """The executable part of ``actions`` (T_p, J) and up to ``bridge_steps`` actions after
    it (as many as the prediction has), without those already due; None if all are due."""
    actions = np.asarray(actions, dtype=np.float64)
    horizon = actions.shape[0]
    if not 1 <= n_action_steps <= horizon - n_obs_steps + 1:
        raise ValueError(
            f"action horizon T_a {n_action_steps} must be in 1..T_p - T_o + 1 = {horizon - n_obs_steps + 1}"
        )
    if bridge_steps < 0:
        raise ValueError(f"bridge_steps {bridge_steps} must be >= 0")
    start = n_obs_steps - 1
    n = min(n_action_steps + bridge_steps, horizon - start)
    exe = actions[start : start + n]  # (T_a + bridge, J)
    origin = t_obs + offset
    times = origin + np.arange(n) * dt
    keep = times >= now + latency
    if not keep.any():
        return None
    first = int(np.argmax(keep))  # times increase, so the kept ones are a suffix
    return TimedChunk(origin=origin, times=times[first:], positions=exe[first:], dropped=first,
                      handover=origin + (n_action_steps - 1) * dt)


def bridge_length(bridge_steps: int, n_action_steps: int, n_obs_steps: int, horizon: int) -> int:
    """The bridge actually published: ``bridge_steps``, or what the prediction has behind T_a."""
    return max(0, min(bridge_steps, horizon - n_obs_steps + 1 - n_action_steps))


def latency_problem(execution_latency: float, n_action_steps: int, dt: float, offset: float = 0.0,
                    bridge: int = 0) -> str | None:
    """Why these settings can never publish a chunk, or None.

    The published actions (T_a and a ``bridge`` of that many more) span ``t_obs + offset
    ... t_obs + offset + (T_a + bridge - 1)*dt``, and inference ends after t_obs, so an
    action is kept only if it is due after ``now + execution_latency``: a latency that
    reaches past the last action leaves nothing, whatever the inference time."""
    span = offset + (n_action_steps + bridge - 1) * dt
    if execution_latency >= span:
        return (f"execution_latency {execution_latency:g} s must be shorter than the published actions' span after "
                f"t_obs, action_time_offset + (action_horizon + bridge - 1) * dt = {offset:g} + "
                f"{n_action_steps + bridge - 1} x {dt:g} = {span:g} s: every chunk would be over budget")
    return None
