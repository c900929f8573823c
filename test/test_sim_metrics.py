"""Motion metrics of a rollout (sim.metrics), on hand-made trajectories."""
import numpy as np
import pytest

from dp_ros.core.command import Command
from dp_ros.sim.metrics import chunk_motion, hold_fraction, seam_jumps, seam_steps, speed_ratio


def cmd(t_switch, start, times, positions):
    return Command(t_switch, np.array([start], float), np.array(times, float), np.array(positions, float).reshape(-1, 1))


def test_hold_fraction_counts_periods_without_a_point_ahead():
    # chunk 1 runs 0.0 -> 0.4, then nothing until chunk 2 arrives at 0.6 and runs to 1.0
    commands = [(0.0, cmd(0.0, 0.0, [0.1, 0.2, 0.3, 0.4], [[0.1], [0.2], [0.3], [0.4]])),
                (0.6, cmd(0.6, 0.4, [0.7, 0.8, 0.9, 1.0], [[0.5], [0.6], [0.7], [0.8]]))]
    holding, total = hold_fraction(commands, 0.0, 1.2, 0.1)
    # periods at 0.0 .. 1.1 (12); holding at 0.4, 0.5 (chunk 1 spent) and 1.0, 1.1 (chunk 2 spent)
    assert (holding, total) == (4, 12)
    assert hold_fraction([], 0.0, 1.0, 0.1) == (10, 10)  # nothing commanded: holding throughout


def test_seam_jump_is_where_the_new_points_disagree_with_the_old_path():
    old = cmd(0.0, 0.0, [0.1, 0.2, 0.3, 0.4], [[0.1], [0.2], [0.3], [0.4]])
    same = cmd(0.25, 0.25, [0.3, 0.4], [[0.3], [0.4]])  # continues the old line exactly
    off = cmd(0.25, 0.25, [0.3, 0.4], [[0.5], [0.6]])  # its first point is 0.2 above the old path
    assert seam_jumps([(0.0, old), (0.25, same)]) == pytest.approx([0.0])
    assert seam_jumps([(0.0, old), (0.25, off)]) == pytest.approx([0.2])
    assert seam_jumps([(0.0, old)]) == []


def test_seam_steps_chunk_motion_and_speed_ratio():
    old = cmd(0.0, 0.0, [0.1, 0.2, 0.3, 0.4], [[0.1], [0.2], [0.3], [0.4]])  # 0.1 per period of 0.1 s
    smooth = cmd(0.25, 0.25, [0.3, 0.4], [[0.3], [0.4]])
    jump = cmd(0.25, 0.25, [0.3, 0.4], [[0.5], [0.6]])  # must make up 0.25 in 0.05 s
    assert seam_steps([(0.0, old), (0.25, smooth)], 0.1) == pytest.approx([0.1])
    assert seam_steps([(0.0, old), (0.25, jump)], 0.1) == pytest.approx([0.25 + 0.05])
    assert chunk_motion([(0.0, old)], 0.1) == pytest.approx([0.1, 0.1, 0.1])
    assert chunk_motion([(0.0, cmd(0.0, 0.0, [0.1, 0.3], [[0.0], [0.4]]))], 0.1) == pytest.approx([0.2])
    # 1 rad/s on every segment of the old path; the jump's first segment is 0.25 in 0.05 s.
    assert speed_ratio([(0.0, old)], np.array([1.0])) == pytest.approx(1.0)
    assert speed_ratio([(0.0, old), (0.25, jump)], np.array([2.0])) == pytest.approx(2.5)


def test_wilson_interval():
    from dp_ros.sim.results import wilson_interval

    # Worked by hand from the closed form, z = 1.96: 25/50 -> 0.5 +- 1.8202 * sqrt(0.005 + 0.000384).
    assert wilson_interval(25, 50) == pytest.approx((0.3664, 0.6336), abs=1e-4)
    assert wilson_interval(50, 50) == (pytest.approx(0.9287, abs=1e-4), 1.0)
    assert wilson_interval(0, 50) == (0.0, pytest.approx(0.0713, abs=1e-4))
    assert wilson_interval(1, 1) == (pytest.approx(0.2065, abs=1e-4), 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
