"""The simulated scene (MuJoCo, no ROS): a 4-joint arm on a table, two identical
targets, one camera.

The task has two equally valid goals, so demonstrations are multimodal as in the
paper: two identical red targets lie on the table, mirrored left and right of the
arm's reach at a randomized distance; touching either one with the gripper tip
(within ``SUCCESS_RADIUS``) succeeds.

``SimArm`` steps the physics, drives the joints' position servos from a
``TrajectoryController`` and renders the camera. Render headless with
``MUJOCO_GL=egl`` (Mesa's EGL works without a GPU); shadows and reflections are off.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dp_ros.sim.controller import TrajectoryController

JOINTS = ("base_yaw", "shoulder", "elbow", "wrist")
HOME = np.array([0.0, -0.3, 1.2, 0.6])
SUCCESS_RADIUS = 0.05
TIMESTEP = 0.002

MJCF = """
<mujoco model="dp_ros_arm">
  <compiler angle="radian"/>
  <option timestep="{timestep}" gravity="0 0 -9.81"/>
  <visual><quality shadowsize="0"/><global offwidth="640" offheight="480"/></visual>
  <default>
    <joint damping="2" armature="0.05" limited="true"/>
    <geom contype="0" conaffinity="0"/>
    <position kp="120" forcelimited="true" forcerange="-60 60"/>
  </default>
  <asset>
    <material name="table" rgba="0.55 0.45 0.35 1" reflectance="0"/>
    <material name="arm" rgba="0.25 0.3 0.35 1"/>
    <material name="target" rgba="0.9 0.1 0.1 1"/>
  </asset>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1" castshadow="false" diffuse="0.8 0.8 0.8"/>
    <geom name="table" type="box" pos="0.35 0 -0.02" size="0.5 0.5 0.02" material="table"/>
    <body name="base" pos="0 0 0">
      <geom type="cylinder" size="0.06 0.04" pos="0 0 0.04" material="arm"/>
      <body name="turret" pos="0 0 0.08">
        <joint name="base_yaw" type="hinge" axis="0 0 1" range="-1.6 1.6"/>
        <geom type="cylinder" size="0.04 0.03" material="arm"/>
        <body name="upper" pos="0 0 0.03">
          <joint name="shoulder" type="hinge" axis="0 1 0" range="-1.6 1.6"/>
          <geom type="capsule" fromto="0 0 0 0 0 0.25" size="0.025" material="arm"/>
          <body name="fore" pos="0 0 0.25">
            <joint name="elbow" type="hinge" axis="0 1 0" range="-1.6 2.4"/>
            <geom type="capsule" fromto="0 0 0 0.22 0 0" size="0.02" material="arm"/>
            <body name="hand" pos="0.22 0 0">
              <joint name="wrist" type="hinge" axis="0 1 0" range="-1.8 1.8"/>
              <geom type="capsule" fromto="0 0 0 0.1 0 0" size="0.015" material="arm"/>
              <site name="tip" pos="0.1 0 0" size="0.01"/>
            </body>
          </body>
        </body>
      </body>
    </body>
    <body name="target_left" mocap="true" pos="0.35 0.2 0.005">
      <geom type="cylinder" size="0.035 0.005" material="target"/>
    </body>
    <body name="target_right" mocap="true" pos="0.35 -0.2 0.005">
      <geom type="cylinder" size="0.035 0.005" material="target"/>
    </body>
    <camera name="camera" pos="0.35 0 0.9" xyaxes="0 -1 0 1 0 0"/>
  </worldbody>
  <actuator>
    <position name="base_yaw" joint="base_yaw"/>
    <position name="shoulder" joint="shoulder"/>
    <position name="elbow" joint="elbow"/>
    <position name="wrist" joint="wrist"/>
  </actuator>
</mujoco>
"""


@dataclass(frozen=True)
class Outcome:
    success: bool
    goal: int  # 0 = left, 1 = right, -1 = none
    distances: tuple[float, float]


def _load_triton_first() -> None:
    """Import triton (torch's compiler backend) before Mesa's EGL/LLVM is loaded, if installed.

    Loading triton's libraries after Mesa's llvmpipe has loaded its LLVM crashes the
    process (segmentation fault, found when a policy exported to ONNX after the
    simulated camera had rendered: torch.export imports triton). The other order works.
    """
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


class SimArm:
    """Physics, servos, camera and task; time is simulation time in seconds."""

    def __init__(self, image_size: tuple[int, int] = (96, 96), seed: int = 0):
        import os
        import sys

        # MuJoCo picks its GL backend once, when first imported: headless EGL unless the user
        # chose otherwise. Imported earlier without MUJOCO_GL, it is on GLFW, which needs a
        # display; render() then says so rather than hang in a context that never comes.
        self._gl_problem = ("mujoco was imported before the simulator could set MUJOCO_GL=egl, so it renders "
                            "with GLFW (needs a display): set MUJOCO_GL=egl in the environment"
                            if "mujoco" in sys.modules and "MUJOCO_GL" not in os.environ
                            and not os.environ.get("DISPLAY") else "")
        os.environ.setdefault("MUJOCO_GL", "egl")
        import mujoco

        self._mj = mujoco
        self.model = mujoco.MjModel.from_xml_string(MJCF.format(timestep=TIMESTEP))
        self.data = mujoco.MjData(self.model)
        self.image_size = image_size
        # An EGL context belongs to the thread that made it current: one thread creates,
        # uses and frees the renderer, whichever threads call render() and close().
        from concurrent.futures import ThreadPoolExecutor

        self._render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim_render")
        self._renderer = None
        self._rng = np.random.default_rng(seed)
        self._qadr = [self.model.joint(j).qposadr[0] for j in JOINTS]
        self._tip = self.model.site("tip").id
        self._mocap = [self.model.body(b).mocapid[0] for b in ("target_left", "target_right")]
        lo, hi = self.model.jnt_range[[self.model.joint(j).id for j in JOINTS]].T
        self.lower, self.upper = lo.copy(), hi.copy()
        self.controller = TrajectoryController(JOINTS, HOME)
        self.reset()

    @property
    def time(self) -> float:
        return float(self.data.time)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Arm at home, targets at a new mirrored position; returns the two target xy positions."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        t = self.time
        self._mj.mj_resetData(self.model, self.data)
        self.data.time = t
        self.data.qpos[self._qadr] = HOME
        self.data.ctrl[:] = HOME
        x = self._rng.uniform(0.26, 0.38)  # within comfortable reach (at most 0.44 m of 0.47 m)
        y = self._rng.uniform(0.12, 0.22)
        for k, side in enumerate((1.0, -1.0)):
            self.data.mocap_pos[self._mocap[k]] = [x, side * y, 0.005]
        self.controller = TrajectoryController(JOINTS, HOME)
        self._mj.mj_forward(self.model, self.data)
        return self.targets()

    def targets(self) -> np.ndarray:
        return np.array([self.data.mocap_pos[m][:2] for m in self._mocap])  # (2, xy)

    def target_positions(self) -> np.ndarray:
        """(2, 3): x, y, z of the left and the right target, in the world (= arm base) frame."""
        return np.array([self.data.mocap_pos[m] for m in self._mocap])

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    def tip(self) -> np.ndarray:
        return self.data.site_xpos[self._tip].copy()

    def step(self, duration: float) -> None:
        """Advance the simulation, the servos following the controller's setpoints."""
        end = self.time + duration
        while self.time < end - 1e-12:
            self.data.ctrl[:] = np.clip(self.controller.command(self.time), self.lower, self.upper)
            self._mj.mj_step(self.model, self.data)

    def render(self) -> np.ndarray:
        """The camera image, (H, W, 3) uint8 RGB."""
        if self._gl_problem:
            raise RuntimeError(self._gl_problem)
        return self._render_thread.submit(self._render).result()

    def _render(self) -> np.ndarray:
        if self._renderer is None:
            _load_triton_first()
            self._renderer = self._mj.Renderer(self.model, *self.image_size)
        self._renderer.update_scene(self.data, camera="camera")
        return self._renderer.render().copy()

    def close(self) -> None:
        """Free the renderer (in its own thread) and stop that thread."""
        def free():
            if self._renderer is not None:
                self._renderer.close()
                self._renderer = None
        self._render_thread.submit(free).result()
        self._render_thread.shutdown()

    def outcome(self) -> Outcome:
        tip = self.tip()
        d = tuple(float(np.linalg.norm(tip[:2] - xy)) + max(tip[2] - 0.03, 0.0) for xy in self.targets())
        hit = [k for k in (0, 1) if d[k] < SUCCESS_RADIUS]
        return Outcome(bool(hit), hit[0] if hit else -1, d)

    def tip_at(self, q: np.ndarray) -> np.ndarray:
        """The tip position at joint positions ``q`` (MuJoCo's kinematics; for the scripted
        expert, on a SimArm that is not being stepped)."""
        self.data.qpos[self._qadr] = q
        self._mj.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self._tip].copy()

    def solve_ik(self, goal_xy: np.ndarray, height: float = 0.02) -> np.ndarray:
        """Joint positions that put the tip above ``goal_xy`` at ``height`` (for the scripted
        expert): base yaw toward the goal, then a planar 3-link solution, wrist pointing down."""
        yaw = float(np.arctan2(goal_xy[1], goal_xy[0]))
        r = float(np.hypot(*goal_xy))
        l1, l2, l3 = 0.25, 0.22, 0.1
        z0 = 0.08 + 0.03  # shoulder height
        wx, wz = r, height + l3 - z0  # wrist position with the last link pointing straight down
        # Angles from vertical, positive toward the goal. Two-link solution: the forearm is
        # at shoulder + bend; the elbow joint is bend - 90 degrees because at zero the
        # forearm sits horizontal. The wrist turns the hand to point straight down.
        d = np.clip((wx ** 2 + wz ** 2 - l1 ** 2 - l2 ** 2) / (2 * l1 * l2), -1.0, 1.0)
        bend = float(np.arccos(d))
        shoulder = float(np.arctan2(wx, wz) - np.arctan2(l2 * np.sin(bend), l1 + l2 * np.cos(bend)))
        elbow = bend - np.pi / 2
        wrist = float(np.pi - (shoulder + bend))
        q = np.array([yaw, shoulder, elbow, wrist])
        return np.clip(q, self.lower, self.upper)
