"""Receding horizon and latency compensation on a fake clock."""
import numpy as np
import pytest

from dp_ros.core.chunking import bridge_length, latency_problem, schedule_chunk

T_P, J, DT = 16, 2, 0.1
ACTIONS = np.arange(T_P * J, dtype=float).reshape(T_P, J)


def test_slice_starts_at_index_t_o_minus_1_and_is_stamped_from_t_obs():
    c = schedule_chunk(ACTIONS, t_obs=100.0, dt=DT, n_obs_steps=2, n_action_steps=8, now=99.0)
    assert c.dropped == 0
    assert np.array_equal(c.positions, ACTIONS[1:9])
    assert np.allclose(c.times, 100.0 + np.arange(8) * DT)


def test_due_actions_are_dropped():
    # Inference took 0.25 s and execution latency is 0.02 s: actions for t < 100.27 are due.
    c = schedule_chunk(ACTIONS, 100.0, DT, 2, 8, now=100.25, latency=0.02)
    assert c.dropped == 3
    assert np.array_equal(c.positions, ACTIONS[4:9])
    assert c.times[0] == pytest.approx(100.3)


def test_over_budget_chunk_is_none():
    assert schedule_chunk(ACTIONS, 100.0, DT, 2, 8, now=100.75, latency=0.0) is None


def test_offset_shifts_times():
    c = schedule_chunk(ACTIONS, 100.0, DT, 2, 4, now=99.0, offset=0.05)
    assert np.allclose(c.times, 100.05 + np.arange(4) * DT)


def test_action_horizon_range():
    schedule_chunk(ACTIONS, 100.0, DT, 2, 15, now=99.0)
    with pytest.raises(ValueError, match="1..T_p - T_o \\+ 1 = 15"):
        schedule_chunk(ACTIONS, 100.0, DT, 2, 16, now=99.0)


def test_bridge_publishes_the_next_predicted_actions_behind_the_executed_ones():
    c = schedule_chunk(ACTIONS, 100.0, DT, 2, 8, now=99.0, bridge_steps=3)
    assert np.array_equal(c.positions, ACTIONS[1:12]) and np.allclose(c.times, 100.0 + np.arange(11) * DT)
    assert c.handover == pytest.approx(100.7)  # the last executed action's time, not the bridge's
    # Capped at what the prediction has: T_p - T_o + 1 = 15 actions after t_obs.
    assert len(schedule_chunk(ACTIONS, 100.0, DT, 2, 8, now=99.0, bridge_steps=20).times) == 15
    assert bridge_length(20, 8, 2, T_P) == 7 and bridge_length(3, 15, 2, T_P) == 0
    # A delay past the executed slice leaves the bridge, not an over-budget chunk.
    late = schedule_chunk(ACTIONS, 100.0, DT, 2, 8, now=100.75, bridge_steps=3)
    assert late.dropped == 8 and np.array_equal(late.positions, ACTIONS[9:12])
    with pytest.raises(ValueError, match="bridge_steps"):
        schedule_chunk(ACTIONS, 100.0, DT, 2, 8, now=99.0, bridge_steps=-1)


def test_latency_problem_counts_the_bridge():
    assert latency_problem(0.75, 8, DT) is not None and "every chunk would be over budget" in latency_problem(0.75, 8, DT)
    assert latency_problem(0.75, 8, DT, bridge=1) is None
