"""Continuous execution, the pure part (core.seams): early inference, guides, ensembling."""
import numpy as np
import pytest

from dp_ros.core.command import Command, CommandLog
from dp_ros.core.seams import (
    Ensemble, Guide, LatencyEstimate, action_times, guide_arrays, inpaint_guide, next_start, seam_mode_problem,
    soft_mask,
)

DT = 0.1


def test_latency_estimate_is_a_high_percentile_of_recent_inferences():
    est = LatencyEstimate(initial=0.2, window=5)
    assert est.value(95) == 0.2 and len(est) == 0  # nothing measured yet
    for s in (0.1, 0.1, 0.1, 0.1, 0.3):
        est.add(s)
    assert est.value(50) == pytest.approx(0.1) and est.value(100) == pytest.approx(0.3)
    for s in (0.1,) * 5:  # the slow one leaves the window
        est.add(s)
    assert est.value(100) == pytest.approx(0.1)
    est.add(float("nan"))
    est.add(-1.0)
    assert len(est) == 5  # nonsense is not a measurement
    with pytest.raises(ValueError):
        LatencyEstimate(initial=-0.1)


def test_next_start_takes_over_by_the_handover():
    # The running chunk's last executed action is at 10.7; inference takes 0.3 s, the
    # controller acts 0.02 s after publishing, margin 0.03: start at 10.35.
    assert next_start(10.0, 10.7, 0.3, 0.02, 0.03, DT) == pytest.approx(10.35)
    # Never sooner than one period after the last start (the window must move on) ...
    assert next_start(10.0, 10.2, 0.3, 0.02, 0.03, DT) == pytest.approx(10.1)
    # ... and without a running chunk (start-up, holding) one period after the last start.
    assert next_start(10.0, None, 0.3, 0.02, 0.03, DT) == pytest.approx(10.1)


def test_action_times_put_action_t_o_minus_1_at_t_obs():
    t = action_times(5.0, DT, 2, 6, offset=0.01)
    np.testing.assert_allclose(t, 5.01 + np.array([-1, 0, 1, 2, 3, 4]) * DT)


def test_soft_mask_fixes_the_delay_prefix_and_fades_while_the_old_plan_lasts():
    times = np.arange(10) * DT  # 0.0 .. 0.9
    np.testing.assert_allclose(soft_mask(times, 0.3, 5.0, 3), [1, 1, 1, 1, 0.75, 0.5, 0.25, 0, 0, 0])
    np.testing.assert_allclose(soft_mask(times, 0.3, 5.0, 0), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    # The old plan ends at 0.45: nothing to continue after it.
    np.testing.assert_allclose(soft_mask(times, 0.3, 0.45, 3), [1, 1, 1, 1, 0.75, 0, 0, 0, 0, 0])


def _log(*commands):
    log = CommandLog()
    for c in commands:
        log.add(c)
    return log


def test_inpaint_guide_targets_what_the_controller_was_told_to_do():
    # Chunk A from 0.0: a ramp 0.0 -> 0.7 over 0.1 .. 0.7, one joint; a hold before it.
    hold = Command(-1.0, np.array([0.0]), np.array([-0.9]), np.array([[0.0]]))
    a = Command(0.0, np.array([0.0]), np.arange(1, 8) * DT, (np.arange(1, 8) * DT)[:, None])
    times = action_times(0.3, DT, 2, 8)  # 0.2 .. 0.9
    g = inpaint_guide(times, _log(hold, a), t_switch=0.5, blend_steps=2)
    np.testing.assert_allclose(g.targets[:, 0], [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.7, 0.7])  # held after the end
    np.testing.assert_allclose(g.mask, [1, 1, 1, 1, 2 / 3, 1 / 3, 0, 0])
    assert g.fixed == 4
    # Before the first command nothing is known: those actions are free.
    g = inpaint_guide(action_times(0.0, DT, 2, 4), _log(a), t_switch=0.1, blend_steps=0)
    np.testing.assert_allclose(g.mask, [0, 1, 1, 0])
    assert inpaint_guide(times, CommandLog(), 0.5, 2) is None  # nothing sent yet


def test_guide_validation():
    with pytest.raises(ValueError, match="weights"):
        Guide(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Guide(np.zeros((4, 2)), np.full(4, 1.5))
    with pytest.raises(ValueError, match="finite"):
        Guide(np.full((4, 2), np.nan), np.zeros(4))
    assert Guide.none(4, 2).fixed == 0 and not Guide.none(4, 2).mask.any()


def test_ensemble_weights_the_older_chunks_more_with_acts_convention():
    e = Ensemble()
    t1 = np.arange(0, 8) * DT
    first = e.blend(t1, np.zeros((8, 1)), decay=0.5, now=0.0)
    np.testing.assert_allclose(first, 0.0)  # alone, a chunk is itself
    t2 = t1 + 0.3
    out = e.blend(t2, np.ones((8, 1)), decay=0.5, now=0.3)
    w_old, w_new = 1.0, np.exp(-0.5)
    expect = np.where(t2 <= t1[-1] + 1e-9, w_new / (w_old + w_new), 1.0)  # overlap: mean; after: the new one
    np.testing.assert_allclose(out[:, 0], expect)
    # A chunk wholly in the past is forgotten; clear() forgets all.
    e.blend(t2 + 5.0, np.full((8, 1), 2.0), decay=0.5, now=5.0)
    assert len(e) == 1
    e.clear()
    assert len(e) == 0


def test_unknown_seam_modes_are_refused():
    assert seam_mode_problem("inpaint") is None
    assert "must be one of naive, ensemble, inpaint" in seam_mode_problem("rtc")


def test_guide_arrays_normalize_targets_like_actions_and_repeat_weights_per_joint():
    g = Guide(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]), np.array([1.0, 0.5, 0.0]))
    target, mask = guide_arrays(g, np.array([2.0, 1.0]), np.array([-1.0, 0.0]), 3, 2)
    assert target.dtype == mask.dtype == np.float32
    np.testing.assert_allclose(target, [[-1, 1], [3, 3], [7, 5]])
    np.testing.assert_allclose(mask, [[1, 1], [0.5, 0.5], [0, 0]])
    zeros = guide_arrays(None, np.ones(2), np.zeros(2), 3, 2)
    assert all(z.shape == (3, 2) and not z.any() for z in zeros)
    with pytest.raises(ValueError, match="guide has targets"):
        guide_arrays(g, np.ones(2), np.zeros(2), 4, 2)
