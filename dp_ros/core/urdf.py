"""Joint limits from a URDF string (stdlib only, no ROS imports).

The policy node reads ``robot_description`` and hands the XML here; the result feeds
``safety.JointLimits``. Only the ``<joint>`` children of ``<robot>`` count, so the
``<joint>`` references inside ``<transmission>`` or ``<ros2_control>`` are ignored.

Conventions (deliberately conservative for a safety filter, where urdfdom differs):
- revolute / prismatic: ``<limit lower upper velocity>``; a missing attribute (or a
  missing ``<limit>``) means unbounded. (urdfdom reads missing lower/upper as 0.)
- ``<safety_controller soft_lower_limit soft_upper_limit>`` tightens those bounds;
  a soft limit that is absent leaves its side alone. (urdfdom reads absent as 0.)
- continuous: no position bounds, whatever the tags say; only the velocity limit.
- velocity missing, zero or negative: unknown, so +inf.
- fixed, floating and planar joints have no single position to limit: left out.
- mimic joints are reported like any other joint of their type.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence

_LIMITED = ('revolute', 'prismatic')
_UNLIMITED = ('continuous',)
_SKIPPED = ('fixed', 'floating', 'planar')


def _number(element: ET.Element | None, attribute: str, joint: str) -> float | None:
    """The attribute as a float, None if the element or attribute is absent."""
    if element is None or attribute not in element.attrib:
        return None
    text = element.attrib[attribute]
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"joint {joint!r}: <{element.tag} {attribute}={text!r}> is not a number") from None
    if math.isnan(value):
        raise ValueError(f"joint {joint!r}: <{element.tag} {attribute}> is NaN")
    return value


def _joint_limits(joint: ET.Element, name: str, kind: str) -> tuple[float, float, float]:
    limit = joint.find('limit')
    velocity = _number(limit, 'velocity', name)
    if velocity is None or velocity <= 0:
        velocity = math.inf
    if kind in _UNLIMITED:
        return -math.inf, math.inf, velocity

    lower = _number(limit, 'lower', name)
    upper = _number(limit, 'upper', name)
    lower = -math.inf if lower is None else lower
    upper = math.inf if upper is None else upper
    safety = joint.find('safety_controller')
    soft_lower = _number(safety, 'soft_lower_limit', name)
    soft_upper = _number(safety, 'soft_upper_limit', name)
    if soft_lower is not None:
        lower = max(lower, soft_lower)
    if soft_upper is not None:
        upper = min(upper, soft_upper)
    if lower > upper:
        raise ValueError(f"joint {name!r}: lower limit {lower} is above upper limit {upper}")
    return lower, upper, velocity


def parse_joint_limits(urdf_xml: str, joint_names: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """joint name -> (lower, upper, max_velocity) for each requested joint the URDF defines.

    Joints that are absent, or of a type without position limits (fixed, floating,
    planar), are left out; the result follows the order of ``joint_names``.
    Raises ValueError for malformed XML, a root that is not <robot>, a joint defined
    twice, an unknown joint type, or a limit that is not a number.
    """
    try:
        root = ET.fromstring(urdf_xml)
    except ET.ParseError as e:
        raise ValueError(f"robot description is not well-formed XML: {e}") from None
    if root.tag != 'robot':
        raise ValueError(f"robot description must have a <robot> root element, got <{root.tag}>")

    joints: dict[str, ET.Element] = {}
    for joint in root.findall('joint'):
        name = joint.get('name')
        if not name:
            raise ValueError("URDF has a <joint> without a name")
        if name in joints:
            raise ValueError(f"URDF defines joint {name!r} twice")
        joints[name] = joint

    result: dict[str, tuple[float, float, float]] = {}
    for name in joint_names:
        joint = joints.get(name)
        if joint is None:
            continue
        kind = joint.get('type')
        if kind in _SKIPPED:
            continue
        if kind not in _LIMITED + _UNLIMITED:
            raise ValueError(f"joint {name!r} has unknown type {kind!r}")
        result[name] = _joint_limits(joint, name, kind)
    return result
