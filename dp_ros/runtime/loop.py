"""One chunk, from observations to a safe, timed trajectory (no ROS).

The policy node pushes messages in from its callbacks and calls ``plan`` from its
inference timer; everything between is here, so it is tested without ROS:

    window (T_o steps, stamps) -> decode the frames used -> [inpaint: guide] -> predict
    (backend) -> [ensemble: blend] -> schedule (slice and bridge, stamp, drop the due
    prefix) -> [late: drop] -> safety filter -> result

The seam between chunks (``core.seams``): ``next_start`` says when the worker should
start the next chunk so that it takes over by the running chunk's handover; the chunk's
planned switch time decides which of its actions the inpainting guidance fixes, and a
chunk ready after that time while the running plan still has points is dropped
("late": the bridge keeps the arm going).

Every refusal comes back as a ``StepResult`` with a state and human-readable
reasons; nothing here publishes.

The planner also keeps the command the node last published (``commit``), so it knows
where the controller will be when the next command takes over (``start_state``):
the safety filter limits the first segment of every chunk and hold from there.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from dp_ros.core.chunking import TimedChunk, bridge_length, schedule_chunk
from dp_ros.core.command import Command, CommandLog, start_position
from dp_ros.core.obs_buffer import ObservationBuffer, StreamSpec
from dp_ros.core.safety import FilterReport, JointLimits, UnsafeChunk, filter_chunk, hold_command
from dp_ros.core.seams import Ensemble, LatencyEstimate, action_times, inpaint_guide, next_start

log = logging.getLogger(__name__)

JOINTS = "joint_pos"


@dataclass(frozen=True)
class Tunables:
    """The settings that may change between chunks (ROS parameters in the node)."""

    n_action_steps: int
    num_inference_steps: int
    execution_latency: float
    action_time_offset: float
    max_obs_age: float
    limits: JointLimits
    tracking_tolerance: float = np.inf  # measured vs. our last command: beyond this, trust the measurement
    simulated_latency: float = 0.0  # a chunk is finished no earlier than this long after it started
    # Continuous execution (core.seams). These defaults: naive seams, no bridge, early inference;
    # the node declares its own (policy_params: inpaint and the full bridge).
    seam_mode: str = "naive"  # naive | ensemble | inpaint
    bridge_steps: int = 0  # predicted actions published behind the T_a executed ones
    inference_period: float = 0.0  # s between chunk starts; 0: early inference from the latency estimate
    latency_percentile: float = 95.0  # of recent inference times, for early inference
    latency_margin: float = 0.03  # s added to that estimate
    inpaint_blend_steps: int = 4  # actions after the fixed prefix over which the guidance fades out
    ensemble_decay: float = 0.1  # temporal ensembling weight exp(-decay * k), k = 0 the oldest chunk


@dataclass
class StepResult:
    state: str  # ok | waiting | stale | bad_input | inference_failed | over_budget | late | unsafe
    reasons: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    chunk: TimedChunk | None = None  # positions already safety-filtered
    report: FilterReport | None = None
    t_switch: float = float("nan")  # when the controller is expected to take the chunk over
    t_planned: float = float("nan")  # when it was planned to (decided at the start: core.seams)
    guided: int = 0  # actions the inpainting guidance fixed
    start: np.ndarray | None = None  # where it will be then: the first segment starts here
    note: str = ""  # something worth a warning about that start (the arm is not where we put it)
    t_obs: float = float("nan")
    t_start: float = float("nan")
    t_end: float = float("nan")  # inference finished
    t_published: float = float("nan")  # set by the node once it has published
    prep_s: float = 0.0  # window + frame decoding
    inference_s: float = 0.0


class ChunkPlanner:
    """Observation history plus the policy: ``plan(clock, tunables)`` makes one chunk.

    ``decode_frame(camera_name, raw) -> (H, W, 3) uint8 RGB`` at the camera's configured
    size; it raises ``ValueError`` for a frame that cannot be used. It runs only on the
    T_o frames each chunk uses. Low-dim keys other than the joint positions (``states``:
    object positions, ...) come in through ``push_state``; like frames, each step takes
    the newest value stamped at or before its time.
    """

    def __init__(self, runner, decode_frame: Callable[[str, Any], np.ndarray], max_obs_age: float):
        self.runner = runner
        cfg = runner.config
        self.config = cfg
        self.decode_frame = decode_frame
        self.cameras = [c.name for c in cfg.obs.cameras]
        self.states = {k.name: k.dim for k in cfg.obs.lowdim if k.name != JOINTS}
        if JOINTS not in [k.name for k in cfg.obs.lowdim]:
            raise ValueError(f"the model does not observe {JOINTS!r}; the node needs it for the safety filter")
        streams = [StreamSpec(n, max_obs_age) for n in (*self.cameras, *self.states)]
        streams.append(StreamSpec(JOINTS, max_obs_age, interpolate=True))
        self.buffer = ObservationBuffer(streams, cfg.n_obs_steps, cfg.dt)
        self._max_age = max_obs_age
        self.command: Command | None = None  # the last command published, as the controller runs it
        self.commands = CommandLog()  # the recent ones: what the controller was told to do when
        self.handover: float | None = None  # the running chunk's last executed action (None: holding)
        self.latency = LatencyEstimate()  # recent inference times, for early inference
        self.ensemble = Ensemble()

    def push_joints(self, stamp: float, positions: np.ndarray, now: float) -> str | None:
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (self.config.action_dim,):
            return f"{JOINTS}: {positions.shape} values for {self.config.action_dim} joints"
        if not np.all(np.isfinite(positions)):
            bad = [self.config.joint_names[i] for i in np.nonzero(~np.isfinite(positions))[0]]
            return f"{JOINTS}: NaN or infinite position for {bad}"
        return self.buffer.push(JOINTS, stamp, positions, now)

    def push_state(self, key: str, stamp: float, values: np.ndarray, now: float) -> str | None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape != (self.states[key],):
            return f"{key}: {values.size} values; the model expects {self.states[key]}"
        if not np.all(np.isfinite(values)):
            return f"{key}: NaN or infinite value"
        return self.buffer.push(key, stamp, values, now)

    def push_frame(self, camera: str, stamp: float, raw: Any, now: float) -> str | None:
        return self.buffer.push(camera, stamp, raw, now)

    def reset(self) -> None:
        self.buffer.clear()
        self.ensemble.clear()

    # ---- where the controller is: our last command, else the measurement ----

    def commit(self, chunk: TimedChunk, t_switch: float, start: np.ndarray) -> None:
        """Record a published command: the controller follows it from ``t_switch`` on."""
        self.command = Command(t_switch, start, chunk.times, chunk.positions)
        self.commands.add(self.command)
        self.handover = float(chunk.handover) if np.isfinite(chunk.handover) else None

    def forget_command(self) -> None:
        """Someone else may have moved the controller (the node was disabled): measure again."""
        self.command = self.handover = None
        self.commands.clear()
        self.ensemble.clear()

    def next_start(self, t_start: float, tun: Tunables) -> float:
        """When the next chunk should start, after one that started at ``t_start``: a fixed
        ``inference_period``, or early enough to take over by the running chunk's handover
        (``core.seams.next_start``)."""
        if tun.inference_period > 0:
            return t_start + tun.inference_period
        return next_start(t_start, self.handover, self.latency.value(tun.latency_percentile), tun.execution_latency,
                          tun.latency_margin, self.config.dt)

    def _running(self, t: float) -> Command | None:
        """The chunk the controller runs at ``t`` and after, if it has points left (not a hold)."""
        if self.handover is None or self.command is None or self.command.end_time <= t:
            return None
        return self.command

    def start_state(self, t_switch: float, now: float, tun: Tunables) -> tuple[np.ndarray | None, str]:
        """Where the controller will be at ``t_switch``, and a note (``core.command.start_position``)."""
        measured = self.buffer.motion(JOINTS, self.config.dt)
        return start_position(self.command, t_switch, measured, now, tun.max_obs_age, tun.limits.max_velocity,
                              tun.tracking_tolerance)

    def hold(self, now: float, tun: Tunables) -> StepResult:
        """A command to stay where the controller will be when it takes it over (through
        the same filter as every chunk); state "stale" when that is unknown."""
        t_switch = now + tun.execution_latency
        start, note = self.start_state(t_switch, now, tun)
        if start is None:
            return StepResult("stale", [f"{JOINTS}: no fresh joint state to hold"], [JOINTS], t_start=now)
        try:
            report = hold_command(t_switch, start, self.config.dt, tun.limits)
        except UnsafeChunk as exc:
            return StepResult("unsafe", [f"unsafe hold: {exc}"], t_start=now)
        chunk = TimedChunk(origin=now, times=np.array([t_switch + self.config.dt]), positions=report.positions,
                           dropped=0)
        return StepResult("ok", [], chunk=chunk, report=report, t_start=now, t_end=now, t_switch=t_switch,
                          start=start, note=note)

    def plan(self, clock: Callable[[], float], tun: Tunables, noise: np.ndarray | None = None,
             wait_until: Callable[[float], None] | None = None, t_start: float | None = None,
             started: Callable[[], None] | None = None) -> StepResult:
        """One chunk, started at ``t_start`` (default: ``clock()`` now). ``started()`` is
        called once its observation window is fixed, before the inference (a lockstep
        driver may then move simulated time on). With ``tun.simulated_latency`` > 0,
        ``wait_until(t)`` is called after the inference to finish it no earlier than its
        start plus that latency."""
        cfg = self.config
        if tun.max_obs_age != self._max_age:
            for name in self.buffer.names:
                self.buffer.set_max_age(name, tun.max_obs_age)
            self._max_age = tun.max_obs_age
        t_start = clock() if t_start is None else t_start
        w0 = time.perf_counter()
        win = self.buffer.window(t_start)
        if not win.ready:
            state = "stale" if win.stale and any(self.buffer.newest(n) for n in win.stale) else "waiting"
            return StepResult(state, win.reasons, win.stale, t_obs=win.t_obs, t_start=t_start)
        obs = {}
        try:
            for cam in self.cameras:
                obs[cam] = np.stack([self.decode_frame(cam, raw) for raw in win.values[cam]])  # (T_o, H, W, 3)
        except ValueError as exc:
            return StepResult("bad_input", [f"{cam}: {exc}"], t_obs=win.t_obs, t_start=t_start)
        obs[JOINTS] = np.stack(win.values[JOINTS])  # (T_o, J)
        for key in self.states:
            obs[key] = np.stack(win.values[key])  # (T_o, D)
        prep = time.perf_counter() - w0
        if started is not None:
            started()
        running = self._running(t_start)
        t_planned = t_start + self.latency.value(tun.latency_percentile) + tun.execution_latency
        if running is not None:  # take over by its handover (later if that is out of reach)
            t_planned = max(t_planned, self.handover)
        times = action_times(win.t_obs, cfg.dt, cfg.n_obs_steps, cfg.horizon, tun.action_time_offset)
        guide = None
        if tun.seam_mode == "inpaint":
            guide = inpaint_guide(times, self.commands, t_planned, tun.inpaint_blend_steps)
        try:
            pred = self.runner.predict(obs, tun.num_inference_steps, noise, t_obs=win.t_obs, guide=guide)
        except Exception as exc:  # a failed inference must never move the arm
            log.exception("inference failed")
            return StepResult("inference_failed", [f"inference failed: {type(exc).__name__}: {exc}"],
                              t_obs=win.t_obs, t_start=t_start, prep_s=prep)
        if tun.simulated_latency > 0 and wait_until is not None:
            wait_until(t_start + tun.simulated_latency)
        now = clock()
        self.latency.add(now - t_start)
        base = dict(t_obs=win.t_obs, t_start=t_start, t_end=now, prep_s=prep, inference_s=pred.seconds,
                    t_planned=t_planned, guided=0 if guide is None else guide.fixed)
        actions = pred.actions
        if actions.shape != (cfg.horizon, cfg.action_dim):
            return StepResult("inference_failed", [f"backend returned shape {actions.shape}"], **base)
        if not np.all(np.isfinite(actions)):
            return StepResult("unsafe", ["unsafe chunk: the policy returned NaN or infinite joint targets"], **base)
        if tun.seam_mode == "ensemble":
            k = cfg.n_obs_steps - 1
            actions = actions.copy()
            actions[k:] = self.ensemble.blend(times[k:], actions[k:], tun.ensemble_decay, now)  # (T_p-k, J)
        bridge = bridge_length(tun.bridge_steps, tun.n_action_steps, cfg.n_obs_steps, cfg.horizon)
        chunk = schedule_chunk(actions, win.t_obs, cfg.dt, cfg.n_obs_steps, tun.n_action_steps,
                               now, tun.execution_latency, tun.action_time_offset, bridge)
        if chunk is None:
            late = now - (win.t_obs + tun.action_time_offset + (tun.n_action_steps + bridge - 1) * cfg.dt)
            return StepResult("over_budget", [
                f"over budget: inference {(now - t_start) * 1e3:.1f} ms; every action of the chunk was due, the "
                f"bridge's too (last one {late * 1e3:.0f} ms ago, latency {tun.execution_latency * 1e3:.0f} ms): "
                "the delay is longer than the published horizon"], **base)
        t_switch = now + tun.execution_latency
        if running is not None and t_switch > t_planned + 1e-9 and running.end_time > t_switch:
            return StepResult("late", [
                f"late: ready to take over {(t_switch - t_planned) * 1e3:.0f} ms after its planned switch; the "
                f"running chunk goes on (its plan has {(running.end_time - t_switch) * 1e3:.0f} ms left)"], **base)
        start, note = self.start_state(t_switch, now, tun)
        if start is None:
            return StepResult("stale", [f"{JOINTS}: no fresh joint state to start the chunk from"],
                              [JOINTS], **base)
        try:
            report = filter_chunk(chunk.times, chunk.positions, t_switch, start, tun.limits)
        except UnsafeChunk as exc:
            return StepResult("unsafe", [f"unsafe chunk: {exc}"], **base)
        safe = dataclasses.replace(chunk, positions=report.positions)
        return StepResult("ok", [], chunk=safe, report=report, t_switch=t_switch, start=start, note=note, **base)
