"""The safety filter: NaN rejection, joint limits, and the speed limit on every segment the
controller executes, the first one included, from where the controller really is."""
import numpy as np
import pytest

from dp_ros.core.safety import JointLimits, UnsafeChunk, filter_chunk, hold_command

TIMES = 10.0 + 0.1 * np.arange(1, 5)
EPS = 1e-9


def limits(v=1.0):
    return JointLimits(np.array([-1.0, -2.0]), np.array([1.0, 2.0]), np.array([v, v]), ("shoulder", "elbow"))


def test_clean_chunk_passes_unchanged():
    pos = np.array([[0.05, 0.0], [0.1, 0.0], [0.15, 0.05], [0.2, 0.1]])
    r = filter_chunk(TIMES, pos, 10.0, np.zeros(2), limits())
    assert np.array_equal(r.positions, pos) and r.limit_clamped == r.speed_limited == 0 and r.returning == ()


def test_nan_and_inf_reject_the_chunk():
    pos = np.zeros((4, 2))
    pos[2, 1] = np.nan
    with pytest.raises(UnsafeChunk, match="NaN or infinite joint targets"):
        filter_chunk(TIMES, pos, 10.0, np.zeros(2), limits())
    with pytest.raises(UnsafeChunk, match="start position"):
        filter_chunk(TIMES, np.zeros((4, 2)), 10.0, np.array([0.0, np.inf]), limits())


def test_joint_limits_clamp():
    pos = np.array([[0.05, 0.0], [5.0, -5.0], [0.0, 0.0], [0.0, 0.0]])
    r = filter_chunk(TIMES, pos, 10.0, np.zeros(2), limits(v=100.0))
    assert np.array_equal(r.positions[1], [1.0, -2.0]) and r.limit_clamped == 2


def test_speed_limited_from_the_start_position():
    # The model asks to jump 1 rad immediately; at 1 rad/s the arm may move 0.1 rad per 0.1 s.
    pos = np.full((4, 2), 1.0)
    r = filter_chunk(TIMES, pos, 10.0, np.zeros(2), limits(v=1.0))
    assert np.allclose(r.positions[:, 0], [0.1, 0.2, 0.3, 0.4])
    assert r.speed_limited == 8 and r.max_correction == pytest.approx(0.9)
    speeds = np.abs(np.diff(np.vstack([np.zeros(2), r.positions]), axis=0)) / 0.1
    assert np.all(speeds <= 1.0 + 1e-9)


def test_first_segment_counts_from_the_switch_time():
    # The controller takes over at 10.08: only 0.02 s to the first point at 10.1.
    r = filter_chunk(TIMES, np.full((4, 2), 1.0), 10.08, np.zeros(2), limits(v=1.0))
    assert np.allclose(r.positions[:, 0], [0.02, 0.12, 0.22, 0.32])


def test_arm_outside_its_limits_comes_back_at_the_speed_limit():
    """Issue 14.1: measured from the clamped position, the first segment commanded a jump of
    2.5 rad in 0.1 s (25 rad/s); now the arm comes back at 1 rad/s and the filter says so."""
    start = np.array([3.5, 0.0])  # shoulder moved by hand far beyond its upper limit 1.0
    r = filter_chunk(TIMES, np.zeros((4, 2)), 10.0, start, limits(v=1.0))
    assert np.allclose(r.positions[:, 0], [3.4, 3.3, 3.2, 3.1])
    assert r.returning == ("shoulder",)
    # Never further out than where it is, and inside once it is back.
    r = filter_chunk(TIMES, np.full((4, 2), 5.0), 10.0, np.array([1.15, 0.0]), limits(v=1.0))
    assert np.allclose(r.positions[:, 0], [1.05, 1.0, 1.0, 1.0])


def test_time_must_not_precede_the_switch_and_must_increase():
    with pytest.raises(UnsafeChunk, match="at or after the switch time"):
        filter_chunk(TIMES, np.zeros((4, 2)), 10.25, np.zeros(2), limits())
    with pytest.raises(UnsafeChunk, match="increase strictly"):
        filter_chunk(np.array([10.1, 10.1, 10.2, 10.3]), np.zeros((4, 2)), 10.0, np.zeros(2), limits())


def test_hold_keeps_the_start_or_returns_inside():
    r = hold_command(10.0, np.array([0.3, -0.2]), 0.1, limits())
    assert np.array_equal(r.positions, [[0.3, -0.2]])
    r = hold_command(10.0, np.array([1.5, -0.2]), 0.1, limits(v=1.0))
    assert np.allclose(r.positions, [[1.4, -0.2]]) and r.returning == ("shoulder",)


def test_limits_validate_and_name_the_joint():
    names = ("shoulder", "elbow")
    with pytest.raises(ValueError, match=r"lower limit above upper limit for joints elbow \(2 > 1\)"):
        JointLimits(np.array([0.0, 2.0]), np.array([1.0, 1.0]), np.array([1.0, 1.0]), names)
    with pytest.raises(ValueError, match=r"lower limit is NaN for joints \['shoulder'\]"):
        JointLimits(np.array([np.nan, 0.0]), np.array([1.0, 1.0]), np.array([1.0, 1.0]), names)
    with pytest.raises(ValueError, match=r"speed limit must be positive for joints \['elbow'\]"):
        JointLimits(np.array([0.0, 0.0]), np.array([1.0, 1.0]), np.array([1.0, 0.0]), names)
    with pytest.raises(ValueError, match="2 values for 3 joints"):
        JointLimits(np.zeros(2), np.ones(2), np.ones(2), (*names, "wrist"))
    with pytest.raises(ValueError, match="one value per joint"):
        JointLimits(np.zeros(2), np.ones(3), np.ones(2))


def test_property_speed_limit_holds_on_every_executed_segment():
    """Random limits, start states (inside and outside the limits), switch times, point
    times and wild targets, seeded: every segment the controller executes, from the start
    at the switch time through every point, moves at most max_velocity; every target is
    inside the limits, or (while returning) no further out than the previous one."""
    rng = np.random.default_rng(14)
    for case in range(5000):
        j = int(rng.integers(1, 8))
        lo = rng.uniform(-3, 0, j)
        hi = lo + rng.uniform(0, 4, j)
        lo[rng.random(j) < 0.2], hi[rng.random(j) < 0.2] = -np.inf, np.inf
        lim = JointLimits(lo, hi, rng.uniform(0.05, 5.0, j))
        start = rng.uniform(-6, 6, j)  # often outside the limits
        t_switch = rng.uniform(0, 100)
        n = int(rng.integers(1, 20))
        times = t_switch + np.cumsum(rng.uniform(0.0, 0.2, n)) + rng.uniform(0, 0.05) * (rng.random() < 0.5)
        if np.any(np.diff(times) <= 0):
            continue
        pos = rng.normal(0, 10, (n, j))
        r = filter_chunk(times, pos, t_switch, start, lim)
        path = np.vstack([start, r.positions])
        dts = np.diff(np.concatenate([[t_switch], times]))
        moved = np.abs(np.diff(path, axis=0))
        assert np.all(moved <= lim.max_velocity * dts[:, None] + EPS), f"case {case}: speed limit broken"
        outside = np.maximum(lim.lower - path, 0) + np.maximum(path - lim.upper, 0)  # distance to the limits
        assert np.all(np.diff(outside, axis=0) <= EPS), f"case {case}: moved away from the limits"
