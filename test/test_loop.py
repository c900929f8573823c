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
        self.error, self.seconds, self.clock, self.calls = error, seconds, clock, []

    def predict(self, obs, steps, noise=None):
        self.calls.append((obs, steps))
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
