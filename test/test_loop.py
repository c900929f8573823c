"""ChunkPlanner with a fake clock and a fake backend: every state, no ROS."""
import numpy as np
import pytest

from dp_ros.core.safety import JointLimits
from dp_ros.model import CameraConfig, LowdimConfig, ObsConfig, PolicyConfig
from dp_ros.runtime.backends import Prediction
from dp_ros.runtime.loop import ChunkPlanner, Tunables

J, T_P, DT = 2, 8, 0.1


class FakeRunner:
    def __init__(self, actions=None, error=None, seconds=0.05, clock=None):
        self.config = _cfg()
        self.actions = np.zeros((T_P, J)) if actions is None else actions
        self.error, self.seconds, self.clock, self.calls, self.guides = error, seconds, clock, [], []

    def predict(self, obs, steps, noise=None, t_obs=None, guide=None):
        self.calls.append((obs, steps))
        self.guides.append(guide)
        if self.error:
            raise self.error
        if self.clock:
            self.clock.t += self.seconds
        return Prediction(np.array(self.actions, dtype=float), self.seconds)


def _cfg():
    # Built without validate(): a 4x4 camera is below the encoder's minimum but fine for a fake backend.
    return PolicyConfig(
        joint_names=("a", "b"), dt=DT,
        obs=ObsConfig(cameras=(CameraConfig("cam", 4, 4, 4, 4),), lowdim=(LowdimConfig("joint_pos", J),)),
        n_obs_steps=2, horizon=T_P, n_action_steps=4,
    )


class Clock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def tun(**kw):
    d = dict(n_action_steps=4, num_inference_steps=10, execution_latency=0.0, action_time_offset=0.0,
             max_obs_age=0.2, limits=JointLimits.unlimited(J, 100.0))
    d.update(kw)
    return Tunables(**d)


def decode(name, raw):
    if raw == "bad":
        raise ValueError("unsupported encoding '32FC1'")
    return np.full((4, 4, 3), raw, np.uint8)


def filled(runner, clock, until=100.0):
    p = ChunkPlanner(runner, decode, max_obs_age=0.2)
    for t in np.arange(99.0, until + 1e-9, 0.01):
        p.push_joints(float(t), np.array([0.1, 0.2]), now=until)
        if round(t * 100) % 3 == 0:
            p.push_frame("cam", float(t), int(t * 100) % 256, now=until)
    return p


def test_ok_chunk_is_timed_and_filtered():
    clock = Clock(100.0)
    runner = FakeRunner(actions=np.tile(np.linspace(0, 0.7, T_P)[:, None], (1, J)), clock=clock)
    p = filled(runner, clock)
    r = p.plan(clock, tun())
    assert r.state == "ok", r.reasons
    obs, steps = runner.calls[0]
    assert obs["cam"].shape == (2, 4, 4, 3) and obs["joint_pos"].shape == (2, J) and steps == 10
    assert r.chunk.dropped == 1  # inference took 0.05 s: the action for t_obs (<= 100.0) was due
    assert np.allclose(np.diff(r.chunk.times), DT)
    assert r.chunk.times[0] >= clock.t


def test_stale_waiting_bad_input_and_failures():
    clock = Clock(100.0)
    empty = ChunkPlanner(FakeRunner(clock=clock), decode, 0.2)
    assert empty.plan(clock, tun()).state == "waiting"

    p = filled(FakeRunner(clock=clock), clock)
    clock.t = 100.5
    r = p.plan(clock, tun())
    assert r.state == "stale" and set(r.stale) == {"cam", "joint_pos"}

    clock.t = 100.0
    p = filled(FakeRunner(clock=clock), clock)
    p.push_frame("cam", 100.005, "bad", now=100.01)
    p.push_joints(100.01, np.array([0.1, 0.2]), now=100.01)
    clock.t = 100.01
    r = p.plan(clock, tun())
    assert r.state == "bad_input" and "cam" in r.reasons[0] and "32FC1" in r.reasons[0]

    clock.t = 100.0
    p = filled(FakeRunner(error=RuntimeError("CUDA error"), clock=clock), clock)
    r = p.plan(clock, tun())
    assert r.state == "inference_failed" and "CUDA error" in r.reasons[0]


def test_over_budget_and_unsafe():
    clock = Clock(100.0)
    p = filled(FakeRunner(seconds=0.5, clock=clock), clock)
    r = p.plan(clock, tun())
    assert r.state == "over_budget" and "over budget" in r.reasons[0]

    clock = Clock(100.0)
    bad = np.zeros((T_P, J))
    bad[3, 1] = np.nan
    p = filled(FakeRunner(actions=bad, seconds=0.01, clock=clock), clock)
    r = p.plan(clock, tun())
    assert r.state == "unsafe" and "NaN" in r.reasons[0]

    clock = Clock(100.0)
    p = filled(FakeRunner(actions=np.zeros((3, J)), clock=clock), clock)
    assert p.plan(clock, tun()).state == "inference_failed"


def test_speed_limit_and_tunables_apply_at_the_next_chunk():
    clock = Clock(100.0)
    runner = FakeRunner(actions=np.full((T_P, J), 5.0), seconds=0.01, clock=clock)
    p = filled(runner, clock)
    r = p.plan(clock, tun(limits=JointLimits.unlimited(J, 1.0), n_action_steps=7, num_inference_steps=3))
    assert r.state == "ok" and r.report.speed_limited > 0
    start = np.array([0.1, 0.2])
    steps = np.abs(np.diff(np.vstack([start, r.chunk.positions]), axis=0))
    assert np.all(steps[1:] <= 1.0 * DT + 1e-9)
    assert len(r.chunk.times) <= 7 and runner.calls[-1][1] == 3


def test_joint_input_validation():
    p = ChunkPlanner(FakeRunner(), decode, 0.2)
    assert "NaN" in p.push_joints(1.0, np.array([0.0, np.nan]), now=1.0)
    assert "values for 2 joints" in p.push_joints(1.0, np.array([0.0]), now=1.0)


def test_state_keys_are_windowed_like_frames():
    runner = FakeRunner()
    runner.config = PolicyConfig(joint_names=("a", "b"), dt=DT,
                                 obs=ObsConfig(lowdim=(LowdimConfig("joint_pos", 2), LowdimConfig("target", 3))),
                                 n_obs_steps=2, horizon=T_P, n_action_steps=4)
    clock = Clock(100.0)
    p = ChunkPlanner(runner, decode, 0.2)
    assert p.states == {"target": 3}
    assert "expects 3" in p.push_state("target", 99.9, np.zeros(2), now=100.0)
    assert "NaN" in p.push_state("target", 99.9, np.array([0.0, np.nan, 1.0]), now=100.0)
    for t in np.arange(99.5, 100.0 + 1e-9, 0.01):
        p.push_joints(float(t), np.array([0.1, 0.2]), now=100.0)
    assert p.plan(clock, tun()).stale == ["target"]  # joints alone are not enough
    for t in (99.85, 99.95):
        p.push_state("target", t, np.array([t, 1.0, 2.0]), now=100.0)
    r = p.plan(clock, tun())
    assert r.state == "ok", r.reasons
    obs = runner.calls[-1][0]
    assert obs["target"].shape == (2, 3)
    np.testing.assert_allclose(obs["target"][:, 0], [99.85, 99.95])  # newest at or before each step


def test_models_without_joint_positions_are_refused():
    runner = FakeRunner()
    runner.config = PolicyConfig(joint_names=("a", "b"), dt=DT, obs=ObsConfig(lowdim=(LowdimConfig("target", 3),)))
    with pytest.raises(ValueError, match="does not observe 'joint_pos'"):
        ChunkPlanner(runner, decode, 0.2)


def _planner_with_history(rng, clock, runner, path, t_m):
    """A planner whose joint history follows ``path(t)`` (the arm tracking its command) up to
    the newest measurement at ``t_m``, with a fresh camera frame."""
    p = ChunkPlanner(runner, decode, max_obs_age=0.3)
    for t in np.arange(t_m - 0.5, t_m + 1e-9, 0.005):
        p.push_joints(float(t), path(float(t)), now=clock.t)
    for t in np.arange(clock.t - 0.6, clock.t + 1e-9, 1 / 30):
        p.push_frame("cam", float(t), 1, now=clock.t)
    return p


def _check_executed(r, truth, now, v):
    """The speed limit on every segment, the first from wherever the controller switches
    between now and the planned switch time (the previous command moved at <= v meanwhile)."""
    assert r.state == "ok", r.reasons
    times, pos = r.chunk.times, r.chunk.positions
    for t_sw in np.linspace(now, r.t_switch, 5):
        step = np.abs(pos[0] - truth(t_sw))
        assert np.all(step <= v * (times[0] - t_sw) + 1e-9), (t_sw, step, v * (times[0] - t_sw))
    assert np.all(np.abs(np.diff(pos, axis=0)) <= v * np.diff(times)[:, None] + 1e-9)


def test_property_first_segment_from_where_the_previous_chunk_has_the_arm():
    """Issue 14.2: a chunk is executing (moving at the speed limit), the newest joint
    measurement is up to max_obs_age old, the controller switches after the latency. The
    new chunk's first segment is limited from the previous chunk's target at the switch
    (measured from the old measurement at `now`, it reached ~41 rad/s)."""
    rng = np.random.default_rng(2)
    for case in range(600):
        v = rng.uniform(0.2, 3.0)
        lim = JointLimits.unlimited(J, v)
        clock = Clock(100.0)
        direction = rng.choice([-1.0, 1.0], J)
        prev_start = rng.uniform(-1, 1, J)
        # The previous (filtered) chunk: from 99.5 on, moving at the limit for 1 s.
        prev_times = 99.5 + 0.1 * np.arange(1, 11)
        from dp_ros.core.command import Command
        from dp_ros.core.chunking import TimedChunk
        prev = Command(99.5, prev_start, prev_times, prev_start + direction * v * (prev_times - 99.5)[:, None])
        latency = rng.uniform(0.0, 0.1)
        age = rng.uniform(0.0, 0.25)
        runner = FakeRunner(actions=rng.normal(0, 5, (T_P, J)), seconds=rng.uniform(0.001, 0.05), clock=clock)
        p = _planner_with_history(rng, clock, runner, prev.at, clock.t - age)
        p.commit(TimedChunk(99.5, prev.times, prev.positions, 0), prev.start_time, prev.start)
        r = p.plan(clock, tun(limits=lim, execution_latency=latency, max_obs_age=0.3, n_action_steps=7))
        _check_executed(r, prev.at, clock.t, v)


def test_property_no_previous_chunk_measured_motion_is_followed():
    """Without a command of ours (just enabled), the arm may still be moving: the start is
    the measurement moved on at the measured velocity, not the measurement taken for now."""
    rng = np.random.default_rng(3)
    for case in range(400):
        v = rng.uniform(0.2, 3.0)
        clock = Clock(100.0)
        q0, u = rng.uniform(-1, 1, J), rng.uniform(-v, v, J)

        def arm(t, q0=q0, u=u):
            return q0 + u * (t - 99.0)

        runner = FakeRunner(actions=rng.normal(0, 5, (T_P, J)), seconds=rng.uniform(0.001, 0.05), clock=clock)
        p = _planner_with_history(rng, clock, runner, arm, clock.t - rng.uniform(0.0, 0.25))
        r = p.plan(clock, tun(limits=JointLimits.unlimited(J, v), execution_latency=rng.uniform(0.0, 0.1),
                              max_obs_age=0.3, n_action_steps=7))
        assert r.state == "ok", r.reasons
        assert np.allclose(r.start, arm(r.t_switch))
        times, pos = r.chunk.times, r.chunk.positions
        assert np.all(np.abs(pos[0] - arm(r.t_switch)) <= v * (times[0] - r.t_switch) + 1e-9)


def test_hold_stops_where_the_running_chunk_has_the_arm():
    """Issue 14.3: the hold keeps the position the controller will be at (on the running
    chunk at the switch), filtered; it does not pull the arm back to an old measurement."""
    from dp_ros.core.chunking import TimedChunk

    clock = Clock(100.0)
    p = _planner_with_history(None, clock, FakeRunner(clock=clock), lambda t: np.array([t - 99.0, 0.0]), 99.8)
    times = 99.9 + 0.1 * np.arange(1, 6)
    p.commit(TimedChunk(99.9, times, np.stack([times - 99.0, np.zeros(5)], axis=1), 0), 99.9, np.array([0.9, 0.0]))
    h = p.hold(clock.t, tun(limits=JointLimits.unlimited(J, 1.0), execution_latency=0.02))
    assert h.state == "ok"
    np.testing.assert_allclose(h.chunk.positions, [[1.02, 0.0]])  # not the 0.8 measured at 99.8
    np.testing.assert_allclose(h.chunk.times, [100.02 + DT])
    assert p.plan is not None and h.report.speed_limited == 0


def test_a_command_the_arm_does_not_follow_is_not_trusted():
    """Someone else moved the arm (a reset, another node, a restarted controller): the
    measurement is far from where our last command put the controller, so the next
    chunk starts from the measurement, and the result says why."""
    from dp_ros.core.chunking import TimedChunk

    clock = Clock(100.0)
    runner = FakeRunner(actions=np.zeros((T_P, J)), seconds=0.01, clock=clock)
    p = _planner_with_history(None, clock, runner, lambda t: np.array([0.0, 0.0]), 99.99)  # the arm is at 0
    p.commit(TimedChunk(99.0, np.array([99.5]), np.array([[1.0, 1.0]]), 0), 99.0, np.array([1.0, 1.0]))
    far = tun(limits=JointLimits.unlimited(J, 1.0), tracking_tolerance=0.1, n_action_steps=7)
    r = p.plan(clock, far)
    assert r.state == "ok" and np.allclose(r.start, 0.0) and "from the measured position" in r.note
    r = p.plan(clock, tun(limits=JointLimits.unlimited(J, 1.0), n_action_steps=7))  # no tolerance: trusted
    assert np.allclose(r.start, 1.0) and r.note == ""


def _ramp(t0=0.0):
    return np.tile(np.linspace(t0, t0 + 0.7, T_P)[:, None], (1, J))


def _top_up(p, t0, t1):
    """Joint states and frames from t0 to t1, received at t1."""
    for t in np.arange(t0, t1 + 1e-9, 0.01):
        p.push_joints(float(t), np.array([0.1, 0.2]), now=t1)
        if round(t * 100) % 3 == 0:
            p.push_frame("cam", float(t), 7, now=t1)


def test_inpaint_guides_the_next_chunk_to_continue_the_published_one():
    clock = Clock(100.0)
    runner = FakeRunner(actions=_ramp(), seconds=0.05, clock=clock)
    p = filled(runner, clock)
    t = tun(seam_mode="inpaint", bridge_steps=3, inpaint_blend_steps=2)
    r = p.plan(clock, t)
    assert r.state == "ok" and runner.guides[-1] is None  # nothing published yet: nothing to continue
    p.commit(r.chunk, r.t_switch, r.start)
    assert p.handover == pytest.approx(r.chunk.origin + 3 * DT)  # T_a = 4: the 4th action
    assert len(r.chunk.times) == 4 + 3 - r.chunk.dropped  # the bridge is published
    _top_up(p, 100.0, 100.2)
    clock.t = 100.2
    r2 = p.plan(clock, t)
    g = runner.guides[-1]
    assert r2.state == "ok", r2.reasons
    # Planned to take over at the handover; every action up to it fixed to the published chunk.
    assert r2.t_planned == pytest.approx(p.handover) and r2.guided == g.fixed > 0
    times = r2.t_obs + (np.arange(T_P) - 1) * DT
    fixed = g.mask >= 1
    assert np.all(times[fixed] <= r2.t_planned + 1e-9) and np.all(times[~fixed] > r2.t_planned)
    np.testing.assert_allclose(g.targets[fixed], np.stack([p.command.at(x) for x in times[fixed]]))
    # Naive and ensemble modes do not guide.
    p.plan(clock, tun(seam_mode="naive"))
    assert runner.guides[-1] is None


def test_a_chunk_ready_after_its_planned_switch_is_dropped_while_the_old_plan_runs():
    clock = Clock(100.0)
    runner = FakeRunner(actions=_ramp(), seconds=0.05, clock=clock)
    p = filled(runner, clock)
    t = tun(bridge_steps=3)
    r = p.plan(clock, t)
    p.commit(r.chunk, r.t_switch, r.start)
    # Started at 100.25: planned to take over at the handover (~100.3), but inference takes
    # 0.2 s: ready at 100.45, the old plan (bridge) runs until ~100.6.
    _top_up(p, 100.0, 100.25)
    clock.t, runner.seconds = 100.25, 0.2
    late = p.plan(clock, t)
    assert late.state == "late" and "after its planned switch" in late.reasons[0] and late.chunk is None
    # The estimate learnt: the next start is earlier, and a chunk that arrives once the
    # old plan has run out is published (there is nothing left to keep going on).
    assert p.latency.value(95) > 0.19
    _top_up(p, 100.25, 100.7)
    clock.t = 100.7
    assert p.plan(clock, t).state == "ok"


def test_next_start_early_inference_or_a_fixed_period():
    clock = Clock(100.0)
    runner = FakeRunner(actions=_ramp(), seconds=0.05, clock=clock)
    p = filled(runner, clock)
    t = tun(execution_latency=0.02, latency_margin=0.03, latency_percentile=100.0)
    assert p.next_start(100.0, t) == pytest.approx(100.0 + DT)  # nothing running: retry a period later
    r = p.plan(clock, t)
    p.commit(r.chunk, r.t_switch, r.start)
    # handover - (0.05 s measured + 0.02 + 0.03)
    assert p.next_start(100.0, t) == pytest.approx(p.handover - 0.1)
    assert p.next_start(100.0, tun(inference_period=0.4)) == pytest.approx(100.4)
    p.forget_command()
    assert p.handover is None and p.next_start(100.0, t) == pytest.approx(100.0 + DT)


def test_ensemble_blends_overlapping_chunks():
    clock = Clock(100.0)
    runner = FakeRunner(actions=np.zeros((T_P, J)), seconds=0.0, clock=clock)
    p = filled(runner, clock)
    t = tun(seam_mode="ensemble", ensemble_decay=0.0, bridge_steps=3)
    r1 = p.plan(clock, t)
    runner.actions = np.ones((T_P, J))
    _top_up(p, 100.0, 100.1)
    clock.t = 100.1
    r = p.plan(clock, t)
    assert r.state == "ok"
    # Where both predicted (equal weights): the mean; after the first chunk's end: the new one.
    first_end = r1.t_obs + (T_P - 2) * DT
    both = r.chunk.times <= first_end + 1e-9
    assert both.sum() >= 3 and (~both).sum() >= 1
    assert np.allclose(r.chunk.positions[both], 0.5) and np.allclose(r.chunk.positions[~both], 1.0)
    assert len(p.ensemble) == 2
