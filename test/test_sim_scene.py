"""The MuJoCo scene: kinematics, targets, servo tracking through the controller, camera."""
import numpy as np
import pytest

from dp_ros.sim.scene import HOME, JOINTS, SUCCESS_RADIUS, SimArm


@pytest.fixture(scope="module")
def mujoco():
    import mujoco

    return mujoco


@pytest.fixture(scope="module")
def arm():
    sim = SimArm(image_size=(64, 80), seed=1)
    yield sim
    sim.close()


def test_ik_puts_the_tip_on_the_goal(arm, mujoco):
    rng = np.random.default_rng(0)
    for _ in range(50):
        arm.reset()
        goal = arm.targets()[rng.integers(2)]
        q = arm.solve_ik(goal, height=0.02)
        arm.data.qpos[:4] = q
        mujoco.mj_forward(arm.model, arm.data)
        tip = arm.tip()
        assert np.linalg.norm(tip[:2] - goal) < 0.005, (goal, tip)
        assert abs(tip[2] - 0.02) < 0.005


def test_targets_are_mirrored_and_randomized(arm):
    a = arm.reset(seed=3)
    b = arm.reset(seed=4)
    assert np.allclose(a[0], a[1] * [1, -1]) and a[0, 1] > 0
    assert not np.allclose(a, b)
    assert np.allclose(arm.reset(seed=3), a)


def test_servos_follow_a_trajectory_and_touching_a_target_succeeds(arm):
    targets = arm.reset(seed=5)
    assert not arm.outcome().success
    goal = arm.solve_ik(targets[1], height=0.02)
    assert arm.controller.submit(JOINTS, 0.0, [1.5], [goal.tolist()], [], now=arm.time) == []
    arm.step(2.5)
    assert np.allclose(arm.joint_positions(), goal, atol=0.03)
    out = arm.outcome()
    assert out.success and out.goal == 1 and out.distances[1] < SUCCESS_RADIUS


def test_camera_renders_rgb(arm):
    arm.reset(seed=6)
    img = arm.render()
    assert img.shape == (64, 80, 3) and img.dtype == np.uint8
    red = (img[..., 0] > 200) & (img[..., 1] < 110) & (img[..., 2] < 110)
    assert red.sum() > 10, "both red targets are in view"
    assert np.allclose(arm.joint_positions(), HOME)


def test_torch_compiler_loads_after_the_camera_rendered():
    """Mesa's LLVM, then triton's, crashed the process (an ONNX export after the sim rendered)."""
    import subprocess
    import sys

    code = ("from dp_ros.sim.scene import SimArm\n"
            "arm = SimArm(image_size=(32, 32)); arm.render()\n"
            "import torch._dynamo\n"
            "arm.close(); print('loaded')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "loaded" in out.stdout, (out.returncode, out.stderr[-2000:])


def test_rendering_after_mujoco_picked_glfw_is_refused_with_the_fix():
    """mujoco imported before the simulator set MUJOCO_GL=egl (and no display): render()
    says what to do instead of hanging in a GL context that never comes."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY")}
    code = ("import mujoco\nfrom dp_ros.sim.scene import SimArm\narm = SimArm()\n"
            "try:\n    arm.render()\nexcept RuntimeError as e:\n    print(e)\nfinally:\n    arm.close()\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "set MUJOCO_GL=egl in the environment" in out.stdout, out.stderr
