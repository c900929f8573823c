"""The scripted expert's plan, executed by the simulated arm through its controller."""
import numpy as np

from dp_ros.sim.expert import plan_reach
from dp_ros.sim.scene import JOINTS, SimArm


def test_plans_reach_either_goal_and_respect_the_speed():
    arm = SimArm(seed=0)
    rng = np.random.default_rng(0)
    goals = []
    try:
        for episode in range(8):
            targets = arm.reset(seed=episode)
            plan = plan_reach(arm.joint_positions(), targets, arm.solve_ik, rng, speed=0.6)
            steps = np.abs(np.diff(plan.waypoints, axis=0)) / np.maximum(np.diff(plan.times)[:, None], 1e-9)
            assert np.all(steps <= 0.6 + 1e-9)
            # Follow the plan at 10 Hz, as the recorder would command it (one point, dt ahead).
            t = 0.0
            while t < plan.duration + 0.5:
                t += 0.1
                arm.controller.submit(JOINTS, 0.0, [0.1], [plan.at(t).tolist()], [], now=arm.time)
                arm.step(0.1)
            out = arm.outcome()
            assert out.success and out.goal == plan.goal, (episode, out)
            goals.append(plan.goal)
    finally:
        arm.close()
    assert 0 < sum(goals) < len(goals), "both goals get chosen"


def test_plan_is_continuous_and_holds_at_the_end():
    arm = SimArm(seed=0)
    try:
        plan = plan_reach(arm.joint_positions(), arm.reset(seed=1), arm.solve_ik, np.random.default_rng(1))
        assert np.allclose(plan.at(0.0), arm.joint_positions())
        assert np.allclose(plan.at(plan.duration + 5), plan.waypoints[-1])
        ts = np.linspace(0, plan.duration, 200)
        qs = np.stack([plan.at(t) for t in ts])
        assert np.max(np.abs(np.diff(qs, axis=0))) < 0.05
    finally:
        arm.close()
