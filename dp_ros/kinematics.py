"""An arm's kinematics from its URDF, with Pinocchio (no ROS).

``ArmKinematics.from_urdf(xml, joint_names, tip_frame)`` builds the chain from the URDF's
root link (or ``base_frame``, a frame fixed to it) to ``tip_frame``, with the joints in
``joint_names`` (the arm's ``/joint_states`` names, in the recorder's order) as its
variables. Movable URDF joints outside ``joint_names`` and off that chain (fingers,
another arm) are locked at zero; one on the chain is refused, as are a missing tip
frame and a name in ``joint_names`` the URDF does not have (except ``free``: joints
commanded without kinematics, such as a gripper).

It gives what ``core.cartesian`` needs: the tip's pose in the base frame and its
Jacobian in the base frame's axes at the tip (Pinocchio's LOCAL_WORLD_ALIGNED), with one
column per name in ``joint_names`` (zero for joints off the chain). Revolute, prismatic
and continuous joints are supported.

Why Pinocchio: a maintained rigid-body library that reads URDF directly, with analytic
Jacobians (the alternatives on pip, such as ikpy, are slower and compute Jacobians by
finite differences).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


class KinematicsError(ValueError):
    """A URDF, tip frame or joint list that cannot describe the arm; the message says which."""


def _pin():
    try:
        import pinocchio
    except ImportError:  # pragma: no cover - pin is in requirements.txt
        raise KinematicsError("Pinocchio is not installed: pip install pin (requirements.txt pins it)") from None
    return pinocchio


class ArmKinematics:
    """Forward kinematics and Jacobians of one tip frame; use ``from_urdf``."""

    def __init__(self, model, tip: int, base_inverse, joint_names: tuple[str, ...],
                 columns: dict[int, tuple[int, int, int]], tip_frame: str, base_frame: str):
        self._pin = _pin()
        self.model, self.data = model, model.createData()
        self._tip = tip
        self._base_inv = base_inverse  # SE3: root -> base frame
        self.joint_names = joint_names
        self._columns = columns  # index in joint_names -> (idx_q, nq, idx_v)
        self.tip_frame, self.base_frame = tip_frame, base_frame
        self.chain = tuple(joint_names[i] for i in sorted(columns))

    @classmethod
    def from_urdf(cls, urdf_xml: str, joint_names: Sequence[str], tip_frame: str, base_frame: str = "",
                  free: Sequence[str] = ()) -> ArmKinematics:
        pin = _pin()
        if not isinstance(urdf_xml, str) or not urdf_xml.strip():
            raise KinematicsError("the robot description is empty")
        try:
            full = pin.buildModelFromXML(urdf_xml)
        except (RuntimeError, ValueError) as e:
            raise KinematicsError(f"the robot description is not a URDF Pinocchio can read: {e}") from None
        if not tip_frame or not full.existFrame(tip_frame):
            raise KinematicsError(f"tip frame {tip_frame!r} is not in the URDF; its links are "
                                  f"{[f.name for f in full.frames if f.type == pin.FrameType.BODY]}")
        names = tuple(joint_names)
        movable = {full.names[j]: j for j in range(1, full.njoints)}
        missing = [n for n in names if n not in movable and n not in free]
        if missing:
            raise KinematicsError(f"joints {missing} (from joint_names, as on /joint_states) are not movable "
                                  f"joints of the URDF, whose movable joints are {list(movable)}")
        chain: list[int] = []
        j = full.frames[full.getFrameId(tip_frame)].parentJoint
        while j > 0:
            chain.append(j)
            j = full.parents[j]
        off_list = [full.names[j] for j in reversed(chain) if full.names[j] not in names]
        if off_list:
            raise KinematicsError(f"joints {off_list} lie between the base and {tip_frame!r} but are not in "
                                  f"joint_names {list(names)}: add them (as on /joint_states)")
        lock = [j for name, j in movable.items() if name not in names]
        model = pin.buildReducedModel(full, lock, pin.neutral(full)) if lock else full
        base_inv = pin.SE3.Identity()
        root = next((f.name for f in model.frames if f.type == pin.FrameType.BODY and f.parentJoint == 0),
                    "universe")
        if base_frame:
            if not model.existFrame(base_frame):
                raise KinematicsError(f"base frame {base_frame!r} is not in the URDF (frames: {[f.name for f in model.frames]})")
            frame = model.frames[model.getFrameId(base_frame)]
            if frame.parentJoint != 0:
                raise KinematicsError(f"base frame {base_frame!r} moves with joint "
                                      f"{model.names[frame.parentJoint]!r}: choose a frame fixed to the root")
            base_inv = frame.placement.inverse()
            root = base_frame
        on_chain = {full.names[j] for j in chain}  # all in joint_names, so none was locked
        columns = {}
        for i, name in enumerate(names):
            if name in on_chain:
                jm = model.joints[model.getJointId(name)]
                if jm.nv != 1:
                    raise KinematicsError(f"joint {name!r} has {jm.nv} degrees of freedom: only revolute, "
                                          "prismatic and continuous joints are supported")
                columns[i] = (jm.idx_q, jm.nq, jm.idx_v)
        return cls(model, model.getFrameId(tip_frame), base_inv, names, columns, tip_frame, root)

    def _q(self, q: np.ndarray) -> np.ndarray:
        x = self._pin.neutral(self.model)
        for i, (iq, nq, _) in self._columns.items():
            if nq == 1:
                x[iq] = q[i]
            else:  # continuous: (cos, sin)
                x[iq], x[iq + 1] = np.cos(q[i]), np.sin(q[i])
        return x

    def pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The tip's position (3,) and rotation (3, 3) in the base frame at joint positions ``q``."""
        pin = self._pin
        pin.framesForwardKinematics(self.model, self.data, self._q(np.asarray(q, float)))
        m = self._base_inv * self.data.oMf[self._tip]
        return np.array(m.translation), np.array(m.rotation)

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """(6, len(joint_names)): the tip's linear and angular velocity, in the base frame's
        axes, per unit velocity of each joint (zero columns for joints off the chain)."""
        pin = self._pin
        x = self._q(np.asarray(q, float))
        J = pin.computeFrameJacobian(self.model, self.data, x, self._tip, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED)
        R = self._base_inv.rotation
        out = np.zeros((6, len(self.joint_names)))
        for i, (_, _, iv) in self._columns.items():
            out[:3, i] = R @ J[:3, iv]
            out[3:, i] = R @ J[3:, iv]
        return out
