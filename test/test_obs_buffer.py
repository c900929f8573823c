"""Observation history: alignment by stamps, interpolation, staleness, bad stamps."""
import numpy as np
import pytest

from dp_ros.core.obs_buffer import ObservationBuffer, StreamSpec

DT = 0.1


def make(n_obs=2, cam_age=0.2, joint_age=0.05):
    return ObservationBuffer(
        [StreamSpec("cam", cam_age), StreamSpec("joints", joint_age, interpolate=True)], n_obs, DT
    )


def feed(buf, t_end, cam_hz=30.0, joint_hz=500.0, t_start=10.0):
    for t in np.arange(t_start, t_end + 1e-9, 1.0 / cam_hz):
        assert buf.push("cam", float(t), f"frame@{t:.4f}", now=t_end) is None
    for t in np.arange(t_start, t_end + 1e-9, 1.0 / joint_hz):
        assert buf.push("joints", float(t), np.array([t, -t]), now=t_end) is None


def test_window_aligns_to_newest_common_time():
    buf = make()
    feed(buf, 11.0, cam_hz=30.0)
    cam_newest = buf.newest_stamps()["cam"]
    w = buf.window(now=11.01)
    assert w.ready, w.reasons
    assert w.t_obs == pytest.approx(cam_newest)  # the camera is the stream that lags
    assert np.allclose(w.times, [cam_newest - DT, cam_newest])
    # Each camera step is the newest frame at or before its time.
    for t, used in zip(w.times, w.stamps["cam"]):
        assert used <= t + 1e-12 and t - used < 1 / 30.0
    # Joint positions are interpolated to exactly the step times.
    for t, v in zip(w.times, w.values["joints"]):
        assert np.allclose(v, [t, -t], atol=1e-9)


def test_t_o_steps_back_at_dt():
    buf = make(n_obs=4, cam_age=1.0, joint_age=1.0)
    feed(buf, 12.0)
    w = buf.window(now=12.0)
    assert w.ready and len(w.values["cam"]) == 4
    assert np.allclose(np.diff(w.times), DT)


def test_stale_and_missing_streams_name_themselves():
    buf = make()
    w = buf.window(now=1.0)
    assert not w.ready and set(w.stale) == {"cam", "joints"}
    feed(buf, 11.0)
    w = buf.window(now=11.5)  # cam newest 0.5 s old > 0.2; joints 0.5 s > 0.05
    assert not w.ready and set(w.stale) == {"cam", "joints"}
    assert any("cam: stale" in r and "0.500 s old" in r for r in w.reasons)
    for t in np.arange(11.002, 11.5, 0.002):  # joints resume, camera stays stopped
        buf.push("joints", float(t), np.zeros(2), now=11.5)
    w = buf.window(now=11.5)
    assert w.stale == ["cam"]


def test_waits_for_enough_history():
    buf = make(n_obs=3)
    feed(buf, 10.1)  # only 0.1 s of data; the window needs 0.2 s
    w = buf.window(now=10.1)
    assert not w.ready and "waiting for 3 steps" in w.reasons[0]


def test_rejects_backwards_repeated_future_and_zero_stamps():
    buf = make()
    assert buf.push("cam", 10.0, "a", now=10.0) is None
    assert "went backwards by 0.500 s" in buf.push("cam", 9.5, "b", now=10.0)
    assert "repeated stamp" in buf.push("cam", 10.0, "c", now=10.0)
    assert "in the future" in buf.push("cam", 11.0, "d", now=10.0)
    assert "no valid header stamp" in buf.push("cam", 0.0, "e", now=10.0)
    assert buf.counts()["cam"] == (5, 4, 1)


def test_history_is_bounded_and_clear_works():
    buf = make()
    feed(buf, 30.0, joint_hz=200.0)
    held = buf.counts()["joints"][2]
    assert held < 200 * ((2 - 1) * DT + 0.05 + 1.0) + 5
    assert buf.window(now=30.0).ready
    buf.clear()
    assert not buf.window(now=30.0).ready


def test_per_stream_max_age_can_change():
    buf = make()
    feed(buf, 11.0)
    assert not buf.window(now=11.3).ready
    buf.set_max_age("cam", 1.0)
    buf.set_max_age("joints", 1.0)
    assert buf.window(now=11.3).ready


def test_recorder_and_node_sample_by_one_rule():
    """Issue 14.7: what the recorder stores for a tick t and what the policy node feeds the
    model for a window step at t come from one rule: each camera's newest frame stamped at
    or before t, the joints interpolated at t. Jittered stamps, the same messages."""
    rng = np.random.default_rng(7)
    node, rec = make(n_obs=3), make(n_obs=1)
    cams = 10.0 + np.cumsum(rng.uniform(0.025, 0.042, 60))
    joints = 10.0 + np.cumsum(rng.uniform(0.003, 0.007, 400))
    for buf in (node, rec):
        for t in cams:
            buf.push("cam", float(t), f"frame@{t:.4f}", now=float(cams[-1]))
        for t in joints:
            buf.push("joints", float(t), np.array([t, -t]), now=float(cams[-1]))
    now = float(cams[-1]) + 0.01
    w = node.window(now)
    assert w.ready, w.reasons
    for k, t in enumerate(w.times):
        tick = rec.window(now, at=float(t))
        assert tick.ready and tick.t_obs == t
        assert tick.stamps == {"cam": [w.stamps["cam"][k]], "joints": [w.stamps["joints"][k]]}
        assert tick.values["cam"] == [w.values["cam"][k]]
        np.testing.assert_array_equal(tick.values["joints"][0], w.values["joints"][k])
        assert w.stamps["cam"][k] == cams[cams <= t].max()  # newest frame at or before t
        np.testing.assert_allclose(w.values["joints"][k], [t, -t])  # interpolated at t
