"""The simulated arm's URDF: what a real arm's robot_state_publisher would publish.

The same kinematic chain as the MuJoCo model in ``scene.py`` (joint origins, axes and
ranges); ``test/test_kinematics.py`` checks that the forward kinematics of the two agree.
``sim_arm`` publishes it on ``/robot_description`` (transient local), so the policy node
reads the joint limits from it and the recorder's Cartesian teleop its kinematics, as
on a real arm. The simulator enforces no joint speed; the URDF's 3 rad/s is above every
speed the configurations use, so the speed limits stay the nodes' own parameters.
"""
from __future__ import annotations

TIP_FRAME = "tip"
BASE_FRAME = "base_link"

_JOINT = """  <joint name="{name}" type="revolute">
    <parent link="{parent}"/>
    <child link="{child}"/>
    <origin xyz="{xyz}" rpy="0 0 0"/>
    <axis xyz="{axis}"/>
    <limit lower="{lower}" upper="{upper}" velocity="3.0" effort="60"/>
  </joint>
"""

# (joint, parent link, child link, origin in the parent, axis, lower, upper): scene.MJCF's bodies.
_CHAIN = (
    ("base_yaw", "base_link", "turret", "0 0 0.08", "0 0 1", -1.6, 1.6),
    ("shoulder", "turret", "upper_arm", "0 0 0.03", "0 1 0", -1.6, 1.6),
    ("elbow", "upper_arm", "forearm", "0 0 0.25", "0 1 0", -1.6, 2.4),
    ("wrist", "forearm", "hand", "0.22 0 0", "0 1 0", -1.8, 1.8),
)


def sim_arm_urdf() -> str:
    links = "".join(f'  <link name="{name}"/>\n' for name in
                    (BASE_FRAME, *(c[2] for c in _CHAIN), TIP_FRAME))
    joints = "".join(_JOINT.format(name=n, parent=p, child=c, xyz=xyz, axis=axis, lower=lo, upper=hi)
                     for n, p, c, xyz, axis, lo, hi in _CHAIN)
    tip = (f'  <joint name="tip_joint" type="fixed">\n    <parent link="hand"/>\n    <child link="{TIP_FRAME}"/>\n'
           '    <origin xyz="0.1 0 0" rpy="0 0 0"/>\n  </joint>\n')
    return f'<?xml version="1.0"?>\n<robot name="dp_ros_sim_arm">\n{links}{joints}{tip}</robot>\n'
