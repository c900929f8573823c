"""The controller's acceptance rules, as a checker."""
from dp_ros.core.trajectory_rules import trajectory_violations

J = ["a", "b"]


def check(**kw):
    args = dict(joint_names=J, stamp=100.0, times_from_start=[0.1, 0.2], positions=[[0, 0], [1, 1]],
                velocities=[], controller_joints=J, now=100.05)
    args.update(kw)
    return trajectory_violations(**args)


def test_valid_message():
    assert check() == []
    assert check(joint_names=["b", "a"]) == []  # any order
    assert check(stamp=0.0, now=1e9) == []  # zero stamp: start now


def test_each_rule():
    assert "missing joints ['b']" in check(joint_names=["a"], positions=[[0], [1]])[0]
    assert check(joint_names=["a"], positions=[[0], [1]], allow_partial=True) == []
    assert any("unknown joints ['c']" in e for e in check(joint_names=["a", "b", "c"], positions=[[0] * 3] * 2))
    assert any("repeated" in e for e in check(joint_names=["a", "a"]))
    assert check(times_from_start=[], positions=[]) == ["no points"]
    assert any("strictly increasing" in e for e in check(times_from_start=[0.2, 0.2]))
    assert any("already past" in e for e in check(now=100.5))
    assert any("non-zero velocity" in e for e in check(velocities=[[0, 0], [0.1, 0]]))
    assert any("has 1 positions" in e for e in check(positions=[[0], [1, 1]]))
    assert any("non-finite" in e for e in check(positions=[[0, float("nan")], [1, 1]]))
