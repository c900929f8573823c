"""Joint limits from URDF: joint types, missing attributes, safety controller, bad XML."""
import math
import subprocess
import sys

import pytest

from dp_ros.core.safety import JointLimits
from dp_ros.core.urdf import parse_joint_limits

INF = math.inf

ARM = """<?xml version="1.0"?>
<robot name="arm">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/><link name="l4"/>
  <link name="l5"/><link name="f1"/><link name="f2"/>
  <joint name="shoulder" type="revolute">
    <parent link="base"/><child link="l1"/>
    <limit lower="-2.5" upper="2.5" effort="10" velocity="1.5"/>
  </joint>
  <joint name="wrist_roll" type="continuous">
    <parent link="l1"/><child link="l2"/>
    <limit effort="5" velocity="3.0"/>
  </joint>
  <joint name="lift" type="prismatic">
    <parent link="l2"/><child link="l3"/>
    <limit lower="0.0" upper="0.4" effort="100" velocity="0.2"/>
  </joint>
  <joint name="tool_mount" type="fixed">
    <parent link="l3"/><child link="l4"/>
  </joint>
  <joint name="finger_left" type="prismatic">
    <parent link="l4"/><child link="f1"/>
    <limit lower="0" upper="0.04" effort="20" velocity="0.1"/>
  </joint>
  <joint name="finger_right" type="prismatic">
    <parent link="l4"/><child link="f2"/>
    <mimic joint="finger_left" multiplier="1" offset="0"/>
    <limit lower="0" upper="0.04" effort="20" velocity="0.1"/>
  </joint>
  <joint name="elbow" type="revolute">
    <parent link="l3"/><child link="l5"/>
    <limit lower="-2.0" upper="2.0" effort="10" velocity="2.0"/>
    <safety_controller soft_lower_limit="-1.9" soft_upper_limit="2.1" k_position="100" k_velocity="10"/>
  </joint>
  <transmission name="t1">
    <joint name="shoulder"><hardwareInterface>position</hardwareInterface></joint>
  </transmission>
  <ros2_control name="hw" type="system">
    <joint name="shoulder"><command_interface name="position"/></joint>
  </ros2_control>
</robot>
"""


def robot(*joints):
    return '<robot name="r">' + ''.join(joints) + '</robot>'


def joint(name, kind, inner=''):
    return f'<joint name="{name}" type="{kind}"><parent link="a"/><child link="b"/>{inner}</joint>'


def test_revolute_continuous_prismatic_and_mimic():
    limits = parse_joint_limits(ARM, ['shoulder', 'wrist_roll', 'lift', 'finger_left', 'finger_right'])
    assert limits == {
        'shoulder': (-2.5, 2.5, 1.5),
        'wrist_roll': (-INF, INF, 3.0),
        'lift': (0.0, 0.4, 0.2),
        'finger_left': (0.0, 0.04, 0.1),
        'finger_right': (0.0, 0.04, 0.1),  # a mimic joint keeps its own limits
    }


def test_result_follows_the_requested_order():
    assert list(parse_joint_limits(ARM, ['lift', 'elbow', 'shoulder'])) == ['lift', 'elbow', 'shoulder']


def test_fixed_and_absent_joints_are_left_out():
    limits = parse_joint_limits(ARM, ['tool_mount', 'no_such_joint', 'shoulder'])
    assert list(limits) == ['shoulder']
    assert parse_joint_limits(ARM, []) == {}


@pytest.mark.parametrize('kind', ['fixed', 'floating', 'planar'])
def test_joint_types_without_a_single_position_are_left_out(kind):
    assert parse_joint_limits(robot(joint('j', kind, '<limit lower="-1" upper="1" velocity="1"/>')), ['j']) == {}


def test_joint_references_outside_robot_children_are_not_joints():
    # <transmission> and <ros2_control> both hold <joint name="shoulder">; only the real one counts.
    assert parse_joint_limits(ARM, ['shoulder']) == {'shoulder': (-2.5, 2.5, 1.5)}
    nested = '<robot name="r"><transmission name="t"><joint name="j" type="revolute"/></transmission></robot>'
    assert parse_joint_limits(nested, ['j']) == {}


def test_safety_controller_takes_the_tighter_bound():
    # hard [-2, 2], soft [-1.9, 2.1] -> [-1.9, 2.0]
    assert parse_joint_limits(ARM, ['elbow']) == {'elbow': (-1.9, 2.0, 2.0)}


def test_safety_controller_with_one_side_only():
    urdf = robot(joint('j', 'revolute', '<limit lower="-1" upper="1" velocity="1"/>'
                                        '<safety_controller soft_upper_limit="0.5" k_velocity="1"/>'))
    assert parse_joint_limits(urdf, ['j']) == {'j': (-1.0, 0.5, 1.0)}


def test_safety_controller_bounds_an_unbounded_side():
    urdf = robot(joint('j', 'revolute', '<limit velocity="1"/><safety_controller soft_lower_limit="-0.3"/>'))
    assert parse_joint_limits(urdf, ['j']) == {'j': (-0.3, INF, 1.0)}


def test_continuous_joints_ignore_position_tags():
    urdf = robot(joint('j', 'continuous', '<limit lower="-1" upper="1" velocity="2"/>'
                                          '<safety_controller soft_lower_limit="-0.5" soft_upper_limit="0.5"/>'))
    assert parse_joint_limits(urdf, ['j']) == {'j': (-INF, INF, 2.0)}


@pytest.mark.parametrize('inner, expected', [
    ('<limit effort="1" velocity="1"/>', (-INF, INF, 1.0)),
    ('<limit lower="-1" effort="1" velocity="1"/>', (-1.0, INF, 1.0)),
    ('<limit upper="1" effort="1" velocity="1"/>', (-INF, 1.0, 1.0)),
    ('<limit lower="-1" upper="1" effort="1"/>', (-1.0, 1.0, INF)),
    ('', (-INF, INF, INF)),  # no <limit> at all
])
def test_missing_attributes_mean_unbounded(inner, expected):
    assert parse_joint_limits(robot(joint('j', 'revolute', inner)), ['j']) == {'j': expected}


@pytest.mark.parametrize('velocity', ['0', '0.0', '-1'])
def test_non_positive_velocity_is_unknown(velocity):
    urdf = robot(joint('j', 'prismatic', f'<limit lower="0" upper="1" velocity="{velocity}"/>'),
                 joint('c', 'continuous', f'<limit velocity="{velocity}"/>'))
    assert parse_joint_limits(urdf, ['j', 'c']) == {'j': (0.0, 1.0, INF), 'c': (-INF, INF, INF)}


def test_continuous_without_limit_element():
    assert parse_joint_limits(robot(joint('j', 'continuous')), ['j']) == {'j': (-INF, INF, INF)}


def test_result_feeds_the_safety_filter():
    names = ['shoulder', 'wrist_roll', 'lift', 'elbow']
    limits = parse_joint_limits(ARM, names)
    lower, upper, velocity = zip(*(limits[n] for n in names))
    jl = JointLimits(lower, upper, velocity)
    assert jl.lower.tolist() == [-2.5, -INF, 0.0, -1.9] and jl.max_velocity.tolist() == [1.5, 3.0, 0.2, 2.0]


@pytest.mark.parametrize('text', ['<robot name="r"><joint name="j"></robot>', '', 'not xml at all', '<robot'])
def test_malformed_xml(text):
    with pytest.raises(ValueError, match="robot description is not well-formed XML"):
        parse_joint_limits(text, ['j'])


def test_root_must_be_robot():
    with pytest.raises(ValueError, match=r"must have a <robot> root element, got <sdf>"):
        parse_joint_limits('<sdf><joint name="j" type="revolute"/></sdf>', ['j'])


@pytest.mark.parametrize('attribute, match', [
    ('lower="abc" upper="1"', r"joint 'j': <limit lower='abc'> is not a number"),
    ('lower="nan" upper="1"', r"joint 'j': <limit lower> is NaN"),
    ('lower="1" upper="-1"', r"joint 'j': lower limit 1.0 is above upper limit -1.0"),
    ('lower="-1" upper="1" velocity="fast"', r"<limit velocity='fast'> is not a number"),
])
def test_bad_limit_values(attribute, match):
    with pytest.raises(ValueError, match=match):
        parse_joint_limits(robot(joint('j', 'revolute', f'<limit {attribute}/>')), ['j'])


def test_soft_limits_that_cross_are_rejected():
    urdf = robot(joint('j', 'revolute', '<limit lower="-1" upper="1" velocity="1"/>'
                                        '<safety_controller soft_lower_limit="0.6" soft_upper_limit="0.4"/>'))
    with pytest.raises(ValueError, match="lower limit 0.6 is above upper limit 0.4"):
        parse_joint_limits(urdf, ['j'])


def test_structural_errors():
    with pytest.raises(ValueError, match="defines joint 'j' twice"):
        parse_joint_limits(robot(joint('j', 'revolute'), joint('j', 'continuous')), ['j'])
    with pytest.raises(ValueError, match="joint 'j' has unknown type 'hinge'"):
        parse_joint_limits(robot(joint('j', 'hinge')), ['j'])
    with pytest.raises(ValueError, match="<joint> without a name"):
        parse_joint_limits('<robot name="r"><joint type="revolute"/></robot>', ['j'])


def test_bad_joints_that_are_not_requested_do_not_matter():
    urdf = robot(joint('bad', 'revolute', '<limit lower="x"/>'), joint('odd', 'hinge'),
                 joint('j', 'revolute', '<limit lower="-1" upper="1" velocity="1"/>'))
    assert parse_joint_limits(urdf, ['j']) == {'j': (-1.0, 1.0, 1.0)}


def test_urdf_imports_no_ros_and_no_torch():
    check = (
        "import sys; sys.modules['rclpy'] = None; import dp_ros.core.urdf; "
        "assert 'torch' not in sys.modules; "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('sensor_msgs', 'rosidl_runtime_py')]"
    )
    subprocess.run([sys.executable, '-c', check], check=True)
