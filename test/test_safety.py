"""The safety filter: NaN rejection, joint limits, speed limits from the measured position."""
import numpy as np
import pytest

from dp_ros.core.safety import JointLimits, UnsafeChunk, filter_chunk

TIMES = 10.0 + 0.1 * np.arange(1, 5)


def limits(v=1.0):
    return JointLimits(np.array([-1.0, -2.0]), np.array([1.0, 2.0]), np.array([v, v]))


def test_clean_chunk_passes_unchanged():
    pos = np.array([[0.05, 0.0], [0.1, 0.0], [0.15, 0.05], [0.2, 0.1]])
    r = filter_chunk(TIMES, pos, now=10.0, measured=np.zeros(2), limits=limits())
    assert np.array_equal(r.positions, pos) and r.limit_clamped == r.speed_limited == 0


def test_nan_and_inf_reject_the_chunk():
    pos = np.zeros((4, 2))
    pos[2, 1] = np.nan
    with pytest.raises(UnsafeChunk, match="NaN or infinite joint targets"):
        filter_chunk(TIMES, pos, 10.0, np.zeros(2), limits())
    with pytest.raises(UnsafeChunk, match="measured"):
        filter_chunk(TIMES, np.zeros((4, 2)), 10.0, np.array([0.0, np.inf]), limits())


def test_joint_limits_clamp():
    pos = np.array([[0.05, 0.0], [5.0, -5.0], [0.0, 0.0], [0.0, 0.0]])
    r = filter_chunk(TIMES, pos, 10.0, np.zeros(2), limits(v=100.0))
    assert np.array_equal(r.positions[1], [1.0, -2.0]) and r.limit_clamped == 2


def test_speed_limited_from_measured_position():
    # The model asks to jump 1 rad immediately; at 1 rad/s the arm may move 0.1 rad per 0.1 s.
    pos = np.full((4, 2), 1.0)
    r = filter_chunk(TIMES, pos, 10.0, np.zeros(2), limits(v=1.0))
    assert np.allclose(r.positions[:, 0], [0.1, 0.2, 0.3, 0.4])
    assert r.speed_limited == 8 and r.max_correction == pytest.approx(0.9)
    speeds = np.abs(np.diff(np.vstack([np.zeros(2), r.positions]), axis=0)) / 0.1
    assert np.all(speeds <= 1.0 + 1e-9)


def test_time_must_be_in_the_future_and_increasing():
    with pytest.raises(UnsafeChunk, match="start after now"):
        filter_chunk(TIMES, np.zeros((4, 2)), 10.25, np.zeros(2), limits())
    with pytest.raises(UnsafeChunk, match="increase strictly"):
        filter_chunk(np.array([10.1, 10.1, 10.2, 10.3]), np.zeros((4, 2)), 10.0, np.zeros(2), limits())


def test_limits_validate():
    with pytest.raises(ValueError, match="lower limit above upper"):
        JointLimits(np.array([1.0]), np.array([0.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="positive"):
        JointLimits(np.array([0.0]), np.array([1.0]), np.array([0.0]))
