"""The recorder's Cartesian teleop device (``device: cartesian``): parameters, inputs and
the robot description. The IK itself is ``core.cartesian``; the kinematics
``dp_ros.kinematics`` (Pinocchio), imported only when this device is chosen.

Inputs: ``sensor_msgs/Joy`` axes (``cartesian.input: joy``; the spacenav driver's
``/spacenav/joy``, or a gamepad) or ``geometry_msgs/Twist`` (``cartesian.input: twist``,
``/spacenav/twist``), each value a deflection in [-1, 1] (spacenav's default scaling).
Joy buttons still start, save and discard episodes, and open and close the gripper.

The URDF comes from the ``robot_description`` parameter, a file (``urdf_path``), or the
``/robot_description`` topic (transient local, as robot_state_publisher publishes it).
From a parameter or a file it is checked at start-up: a missing tip frame, joints that
do not match ``joint_names`` (the ``/joint_states`` names) or a URDF that cannot be read
stop the node with the reason. From the topic it is checked when it arrives; until a
usable one has, the arm holds and the log says why. Its joint limits tighten the
recorder's, as the policy node's do.
"""
from __future__ import annotations

from typing import Callable

from geometry_msgs.msg import Twist
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import String

from dp_ros.core.cartesian import AXES, FRAMES, CartesianConfig, CartesianTeleop, Gripper
from dp_ros.core.safety import JointLimits
from dp_ros.core.urdf import parse_joint_limits

LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
GRIPPER_BUTTONS = ("open", "close", "toggle")


class CartesianDevice:
    """Builds the ``CartesianTeleop`` from the node's parameters and keeps it fed."""

    def __init__(self, node, p: Callable, joint_names: tuple[str, ...], limits: JointLimits,
                 set_limits: Callable[[JointLimits], None]):
        self.node, self.joint_names, self.base_limits, self._set_limits = node, joint_names, limits, set_limits
        self.input = p("cartesian.input", "joy", "joy (sensor_msgs/Joy axes) or twist (geometry_msgs/Twist)")
        if self.input not in ("joy", "twist"):
            raise ValueError(f"cartesian.input {self.input!r} must be 'joy' or 'twist'")
        config = CartesianConfig(
            scales=tuple(p("cartesian.scales", [0.05, 0.05, 0.05, 0.3, 0.3, 0.3],
                           "m/s (x, y, z) and rad/s (roll, pitch, yaw) at full deflection; negative inverts")),
            joy_axes=tuple(p("cartesian.axes", [0, 1, 2, 3, 4, 5],
                             "Joy axis for x, y, z, roll, pitch, yaw (-1: none); spacenav's order is this")),
            enabled=tuple(a for a in p("cartesian.enabled_axes", list(AXES),
                                       "axes the IK follows; the others are locked (left free)") if a),
            frame=p("cartesian.frame", "base", f"twist frame: {' or '.join(FRAMES)} (the tip frame's axes)"),
            deadzone=p("cartesian.deadzone", 0.1, "deflection deadzone", lo=0.0, hi=0.99),
            timeout=p("cartesian.timeout", 0.5, "seconds without input until the device counts as released",
                      lo=0.01, hi=10.0),
            damping=p("cartesian.damping", 0.05, "largest damping of the least-squares IK (near singularities)",
                      lo=0.0, hi=10.0),
            singular_threshold=p("cartesian.singular_threshold", 0.05, "smallest singular value of the Jacobian "
                                 "below which damping sets in", lo=1e-6, hi=10.0),
        ).validate()
        self.tip_frame = p("cartesian.tip_frame", "", "the URDF frame the twist moves (e.g. tool0)")
        if not self.tip_frame:
            raise ValueError("cartesian.tip_frame is empty: name the URDF frame to move (e.g. tool0)")
        self.base_frame = p("cartesian.base_frame", "", "frame the base twist is expressed in; empty = the URDF root")
        gripper = None
        gripper_joint = p("gripper.joint", "", "joint in joint_names driven by the gripper buttons; empty = none")
        if gripper_joint:
            if gripper_joint not in joint_names:
                raise ValueError(f"gripper.joint {gripper_joint!r} is not in joint_names {list(joint_names)}")
            gripper = Gripper(joint_names.index(gripper_joint),
                              p("gripper.open_position", 0.0, "gripper joint position when open"),
                              p("gripper.closed_position", 0.0, "gripper joint position when closed"),
                              p("gripper.speed", 0.5, "gripper speed toward the commanded end", lo=1e-6, hi=100.0))
        self.gripper_buttons = {b: p(f"joy.gripper_{b}_button", -1, f"Joy button: gripper {b} (-1: none)")
                                for b in GRIPPER_BUTTONS}
        self.teleop = CartesianTeleop(joint_names, limits, config, gripper=gripper)
        self._free = [gripper_joint] if gripper_joint else []
        self._last_error = ""
        urdf = p("robot_description", "", "the URDF as XML; empty: urdf_path, else the /robot_description topic")
        path = p("urdf_path", "", "a URDF file; used when robot_description is empty")
        if path and not urdf:
            try:
                with open(path, encoding="utf-8") as f:
                    urdf = f.read()
            except OSError as exc:
                raise ValueError(f"urdf_path {path!r} cannot be read: {exc.strerror or exc}") from None
        if urdf:
            self.load(urdf)  # ValueError (KinematicsError) stops the node: the message says which
            self.source = "parameter" if not path else path
        else:
            topic = p("robot_description_topic", "/robot_description", "std_msgs/String with the URDF (latched)")
            node.create_subscription(String, topic, self._on_description, LATCHED_QOS)
            self.source = topic
        if self.input == "twist":
            node.create_subscription(Twist, p("cartesian.twist_topic", "/spacenav/twist", "geometry_msgs/Twist input"),
                                     self._on_twist, qos_profile_sensor_data)

    @property
    def ready(self) -> bool:
        return self.teleop.kinematics is not None

    @property
    def problem(self) -> str:
        """Why the device cannot move the arm yet ('' when it can): for ~/status."""
        if self.ready:
            return ""
        return f"robot description refused: {self._last_error}" if self._last_error else \
            f"waiting for the robot description on {self.source}"

    def load(self, urdf: str) -> None:
        from dp_ros.kinematics import ArmKinematics

        kin = ArmKinematics.from_urdf(urdf, self.joint_names, self.tip_frame, self.base_frame, free=self._free)
        limits = self.base_limits.tightened(parse_joint_limits(urdf, self.joint_names))
        self.teleop.limits = limits
        self.teleop.set_kinematics(kin)
        self._set_limits(limits)
        self.node.get_logger().info(
            f"cartesian teleop: IK on {list(kin.chain)} from {kin.base_frame!r} to {self.tip_frame!r}, "
            f"axes {list(self.teleop.config.enabled)} in the {self.teleop.config.frame} frame")

    def _on_description(self, msg: String) -> None:
        try:
            self.load(msg.data)
            self._last_error = ""
        except ValueError as exc:
            if str(exc) != self._last_error:
                self.node.get_logger().error(f"robot description refused, the arm holds: {exc}")
            self._last_error = str(exc)

    def _on_twist(self, msg: Twist) -> None:
        values = [msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z]
        reason = self.teleop.set_deflection(values, self.node._now())
        if reason:
            self.node._reject("twist", reason)

    def on_joy(self, axes, pressed: Callable[[int], bool], now: float) -> str | None:
        """Axes (when the input is joy) and the gripper buttons; returns a reason to reject."""
        for what, index in self.gripper_buttons.items():
            if pressed(index):
                problem = self.teleop.command_gripper(what)
                if problem:
                    self.node.get_logger().warning(f"joy gripper {what}: {problem}")
        return self.teleop.set_axes(list(axes), now) if self.input == "joy" else None
