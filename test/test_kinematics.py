"""The arm's kinematics from its URDF (Pinocchio): the simulated arm's URDF agrees with its
MuJoCo model, Jacobians are right, and URDFs that cannot describe the arm are refused."""
import numpy as np
import pytest

from dp_ros.kinematics import ArmKinematics, KinematicsError
from dp_ros.sim.arm_description import TIP_FRAME, sim_arm_urdf
from dp_ros.sim.scene import JOINTS, SimArm

LOWER, UPPER = np.array([-1.6, -1.6, -1.6, -1.8]), np.array([1.6, 1.6, 2.4, 1.8])


def test_the_sim_urdf_and_the_mujoco_model_agree():
    # MuJoCo only through SimArm: importing mujoco before SimArm sets MUJOCO_GL=egl would
    # leave every later renderer in this process on GLFW (no display here).
    kin = ArmKinematics.from_urdf(sim_arm_urdf(), JOINTS, TIP_FRAME)
    arm = SimArm()
    try:
        rng = np.random.default_rng(0)
        worst = 0.0
        site = arm.model.site("tip").id
        for q in rng.uniform(LOWER, UPPER, (100, 4)):
            tip = arm.tip_at(q)
            p, R = kin.pose(q)
            worst = max(worst, np.abs(p - tip).max(), np.abs(R - arm.data.site_xmat[site].reshape(3, 3)).max())
        assert worst < 1e-9
        for j, name in enumerate(JOINTS):  # and the joint ranges
            assert tuple(arm.model.joint(name).range) == (LOWER[j], UPPER[j])
    finally:
        arm.close()


def test_jacobian_matches_finite_differences():
    kin = ArmKinematics.from_urdf(sim_arm_urdf(), JOINTS, TIP_FRAME)
    q = np.array([0.3, -0.2, 1.0, 0.4])
    J = kin.jacobian(q)
    eps = 1e-6
    for i in range(4):
        d = np.zeros(4)
        d[i] = eps
        (p1, R1), (p0, R0) = kin.pose(q + d), kin.pose(q - d)
        np.testing.assert_allclose(J[:3, i], (p1 - p0) / (2 * eps), atol=1e-8)
        W = (R1 - R0) / (2 * eps) @ kin.pose(q)[1].T  # skew(omega)
        np.testing.assert_allclose(J[3:, i], [W[2, 1], W[0, 2], W[1, 0]], atol=1e-8)


def test_extra_joints_are_columns_of_zeros_and_base_frames_shift_the_pose():
    names = ("gripper", *JOINTS)
    kin = ArmKinematics.from_urdf(sim_arm_urdf(), names, TIP_FRAME, base_frame="base_link", free=["gripper"])
    q = np.array([0.7, 0.1, 0.2, 0.3, 0.4])
    assert kin.chain == JOINTS and not kin.jacobian(q)[:, 0].any()
    arm_only = ArmKinematics.from_urdf(sim_arm_urdf(), JOINTS, TIP_FRAME)
    np.testing.assert_allclose(kin.pose(q)[0], arm_only.pose(q[1:])[0])


def test_urdfs_that_cannot_describe_the_arm_are_refused():
    with pytest.raises(KinematicsError, match=r"tip frame 'tool0' is not in the URDF; its links are \['base_link'"):
        ArmKinematics.from_urdf(sim_arm_urdf(), JOINTS, "tool0")
    with pytest.raises(KinematicsError, match=r"joints \['gripper'\] .* are not movable joints of the URDF"):
        ArmKinematics.from_urdf(sim_arm_urdf(), ("gripper", *JOINTS), TIP_FRAME)
    with pytest.raises(KinematicsError, match=r"joints \['elbow'\] lie between the base and 'tip' but are not in "):
        ArmKinematics.from_urdf(sim_arm_urdf(), ("base_yaw", "shoulder", "wrist"), TIP_FRAME)
    # A joint off the chain to the tip and outside joint_names is locked, not refused.
    kin = ArmKinematics.from_urdf(sim_arm_urdf(), ("base_yaw", "shoulder"), "upper_arm")
    assert kin.chain == ("base_yaw", "shoulder")
    with pytest.raises(KinematicsError, match="base frame 'hand' moves with joint 'wrist'"):
        ArmKinematics.from_urdf(sim_arm_urdf(), JOINTS, TIP_FRAME, base_frame="hand")
    with pytest.raises(KinematicsError, match="not a URDF Pinocchio can read"):
        ArmKinematics.from_urdf("<robot name='x'><joint", JOINTS, TIP_FRAME)
    with pytest.raises(KinematicsError, match="empty"):
        ArmKinematics.from_urdf("", JOINTS, TIP_FRAME)
