"""The simulated joint_trajectory_controller: accept/reject, replace, interpolate, hold."""
import numpy as np
import pytest

from dp_ros.sim.controller import TrajectoryController

J = ("a", "b")


def ctrl():
    return TrajectoryController(J, np.zeros(2))


def test_holds_until_a_trajectory_arrives_then_interpolates_and_holds_the_last_point():
    c = ctrl()
    assert np.array_equal(c.command(5.0), [0, 0])
    assert c.submit(J, 0.0, [0.5, 1.0], [[1, 2], [2, 2]], [], now=10.0) == []
    assert np.allclose(c.command(10.25), [0.5, 1.0])  # halfway from (0, 0) to the first point
    assert np.allclose(c.command(10.75), [1.5, 2.0])
    assert np.allclose(c.command(12.0), [2, 2]) and not c.active
    assert np.allclose(c.command(99.0), [2, 2])


def test_joint_order_in_the_message_is_mapped():
    c = ctrl()
    c.submit(["b", "a"], 0.0, [1.0], [[3.0, 1.0]], [], now=0.0)
    assert np.allclose(c.command(1.0), [1.0, 3.0])


def test_absolute_stamp_and_replacement():
    c = ctrl()
    c.submit(J, 0.0, [1.0], [[1, 1]], [], now=0.0)
    mid = c.command(0.5)
    assert c.submit(J, 0.4, [0.2, 0.3], [[-1, -1], [-2, -2]], [], now=0.5) == []  # stamp in the past
    assert np.allclose(c.command(0.5), mid)  # starts from where the arm was commanded
    assert np.allclose(c.command(0.55), (mid + np.array([-1, -1])) / 2)
    assert np.allclose(c.command(0.6), [-1, -1])  # each point at stamp + time_from_start
    assert np.allclose(c.command(0.65), [-1.5, -1.5])
    assert np.allclose(c.command(0.7), [-2, -2])


def test_first_point_already_past_samples_between_message_points():
    c = ctrl()
    c.submit(J, 10.0, [0.1, 0.3], [[0, 0], [2, 2]], [], now=10.2)
    assert np.allclose(c.command(10.2), [1, 1])


@pytest.mark.parametrize("kw,reason", [
    (dict(names=["a"], positions=[[1]]), "missing joints"),
    (dict(names=["a", "b", "c"], positions=[[1, 1, 1]]), "unknown joints"),
    (dict(tfs=[], positions=[]), "no points"),
    (dict(tfs=[0.2, 0.1], positions=[[1, 1], [2, 2]]), "strictly increasing"),
    (dict(stamp=1.0, tfs=[0.5]), "already past"),
    (dict(velocities=[[0.1, 0.0]]), "non-zero velocity"),
])
def test_rejections_keep_the_running_trajectory(kw, reason):
    c = ctrl()
    c.submit(J, 0.0, [1.0], [[1, 1]], [], now=0.0)
    args = dict(names=list(J), stamp=0.0, tfs=[0.5], positions=[[5, 5]], velocities=[])
    args.update(kw)
    errors = c.submit(args["names"], args["stamp"], args["tfs"], args["positions"], args["velocities"], now=5.0 if
                      "past" in reason else 0.5)
    assert errors and reason in " ".join(errors) and c.rejected == 1
    assert np.allclose(c.command(1.0), [1, 1])
