"""The recorder's Cartesian teleop (device: cartesian): start-up validation, the URDF from
/robot_description, a twist driving a fake arm, a stale device, and the whole path in
the simulator (a scripted 3D mouse records demonstrations that train)."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from geometry_msgs.msg import Twist
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import String

from dp_ros.cli import main
from dp_ros.dataset.store import EpisodeStore
from dp_ros.kinematics import ArmKinematics
from dp_ros.nodes.teleop_recorder import TeleopRecorder
from dp_ros.sim.arm_description import TIP_FRAME, sim_arm_urdf
from dp_ros.sim.scene import JOINTS as SIM_JOINTS
from dp_ros.sim.scene import SUCCESS_RADIUS

from ros_helpers import Spinner, params, wait_for
from test_teleop_recorder import FakeArm, JOINTS
from urdf_helpers import serial_urdf

pytestmark = pytest.mark.slow

# The fake arm's three joints as a chain: j1 yaw, j2 and j3 pitch; the tool frame "tool".
URDF = serial_urdf("three", [("j1", "0 0 0.1", "0 0 1", 0.8), ("j2", "0 0 0.05", "0 1 0", 2),
                             ("j3", "0 0 0.3", "0 1 0", 2)], tool=("tool", "0.25 0 0"), lower=-2, upper=2)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def cartesian_params(tmp_path, **overrides):
    kw = {"dataset_path": str(tmp_path / "demos"), "joint_names": list(JOINTS), "cameras": [""],
          "max_joint_speed": 1.0, "device": "cartesian", "cartesian.input": "twist",
          "cartesian.tip_frame": "tool", "cartesian.enabled_axes": ["x", "y", "z"],
          "cartesian.scales": [0.1, 0.1, 0.1, 0.5, 0.5, 0.5], "cartesian.deadzone": 0.0}
    kw.update(overrides)
    return params(**kw)


def test_the_configuration_is_checked_at_start_up(ros, tmp_path):
    def refused(match, **overrides):
        with pytest.raises(ValueError, match=match):
            TeleopRecorder(context=ros, parameter_overrides=cartesian_params(tmp_path, **overrides))
        assert not (tmp_path / "demos").exists()  # nothing created

    refused(r"tip frame 'tool0' is not in the URDF; its links are \['base', 'l1'", robot_description=URDF,
            **{"cartesian.tip_frame": "tool0"})
    refused(r"joints \['j1'\] .* are not movable joints of the URDF",
            robot_description=URDF.replace('name="j1"', 'name="yaw"'))
    refused("cannot be read", urdf_path=str(tmp_path / "missing.urdf"))
    refused("cartesian.tip_frame is empty", robot_description=URDF, **{"cartesian.tip_frame": ""})
    refused("cartesian frame 'world'", robot_description=URDF, **{"cartesian.frame": "world"})
    refused(r"enabled axes \['x', 'w'\]", robot_description=URDF, **{"cartesian.enabled_axes": ["x", "w"]})
    refused("6 finite values", robot_description=URDF, **{"cartesian.scales": [0.1, 0.1]})
    refused("cartesian.input 'mouse'", robot_description=URDF, **{"cartesian.input": "mouse"})
    refused("gripper.joint 'finger' is not in joint_names", robot_description=URDF, **{"gripper.joint": "finger"})
    refused("device 'spacemouse' must be 'joy', 'leader' or 'cartesian'", device="spacemouse")
    # A URDF file that is fine starts, and its limits tighten the recorder's (j1: 0.8 rad/s).
    (tmp_path / "arm.urdf").write_text(URDF)
    overrides = cartesian_params(tmp_path, urdf_path=str(tmp_path / "arm.urdf"))
    rec = TeleopRecorder(context=ros, parameter_overrides=overrides)
    try:
        assert rec.cartesian.ready and rec.limits.max_velocity.tolist() == [0.8, 1.0, 1.0]
        assert rec.limits.lower.tolist() == [-2.0, -2.0, -2.0]
    finally:
        rec.destroy_node()


def test_a_twist_moves_the_tip_once_a_usable_description_arrives_and_a_stale_device_stops_it(ros, tmp_path):
    arm = FakeArm(ros)
    arm.q = np.array([0.0, 0.4, 0.6])
    rec = TeleopRecorder(context=ros, parameter_overrides=cartesian_params(tmp_path, **{"cartesian.timeout": 0.3}))
    description = arm.create_publisher(String, "/robot_description", LATCHED)
    twist = arm.create_publisher(Twist, "/spacenav/twist", qos_profile_sensor_data)
    pushing = {"on": True}

    def push():
        if pushing["on"]:
            msg = Twist()
            msg.linear.x = 0.5  # 0.05 m/s forward, in the base frame
            twist.publish(msg)

    arm.create_timer(0.02, push)
    spin = Spinner(ros, arm, rec)
    try:
        description.publish(String(data=URDF.replace('"tool"', '"flange"')))
        assert wait_for(lambda: len(arm.sent()) >= 8, 10)
        assert not rec.cartesian.ready  # refused (its tip frame is missing): the arm holds
        assert wait_for(lambda: "tip frame 'tool' is not in the URDF" in rec.status.device, 5)
        held = [q for _, q in arm.sent()]
        assert np.allclose(held, held[0])
        description.publish(String(data=URDF))
        assert wait_for(lambda: rec.cartesian.ready, 5)
        assert wait_for(lambda: rec.status.device == "", 5)
        kin = ArmKinematics.from_urdf(URDF, JOINTS, "tool")
        start = kin.pose(arm.q.copy())[0]
        assert wait_for(lambda: kin.pose(arm.q.copy())[0][0] - start[0] > 0.03, 10)
        path = np.array([kin.pose(q)[0] for _, q in arm.sent()[len(held):]])
        sideways = np.abs(path[:, 1:] - start[1:]).max()
        assert sideways < 2e-3, sideways  # along x: y and z stay
        pushing["on"] = False
        assert wait_for(lambda: len(arm.sent()) >= len(path) + len(held) + 8, 10)
        n = len(arm.sent())
        assert wait_for(lambda: len(arm.sent()) >= n + 5, 10)
        last = [q for _, q in arm.sent()[n:]]
        assert np.allclose(last, last[0])  # released (silent for longer than the timeout): it holds
    finally:
        spin.stop()
        rec.destroy_node()
        arm.destroy_node()


def test_cartesian_demonstrations_in_the_simulator_record_and_train(tmp_path, capsys):
    data = tmp_path / "demos"
    assert main(["sim", "record", "--dataset", str(data), "--episodes", "2", "--seed", "5", "--device",
                 "cartesian", "--no-images", "--json", "-"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sim_record"]
    assert sum(s["saved"] for s in summary) == 2
    kin = ArmKinematics.from_urdf(sim_arm_urdf(), SIM_JOINTS, TIP_FRAME)
    with EpisodeStore.open(data) as store:
        assert store.n_episodes == 2
        for e in range(2):
            ep = store.episode(e)
            tips = np.array([kin.pose(q)[0] for q in ep["joint_pos"]])
            targets = ep["targets"][-1].reshape(2, 3)
            assert min(np.linalg.norm(tips[-1, :2] - t[:2]) for t in targets) < SUCCESS_RADIUS
            assert np.all(np.abs(np.diff(ep["action"], axis=0)) <= 1.0 * 0.1 + 1e-6)  # the speed limit
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"horizon": 8, "n_action_steps": 4, "unet": {"down_dims": [16, 32], "step_embed_dim": 16}},
        "training": {"steps": 2, "batch_size": 4, "warmup_steps": 1, "val_every": 2, "val_batches": 1,
                     "checkpoint_every": 2, "num_workers": 0}}))
    assert main(["train", "--dataset", str(data), "--config", str(cfg), "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0


UR_JOINTS = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
             "wrist_3_joint")


def test_the_shipped_spacemouse_configuration_starts(tmp_path):
    """config/recorder_spacenav.yaml, as ros2 launch passes it, on a 6-joint arm's URDF."""
    import rclpy

    from test_cartesian import SIX, SIX_JOINTS

    urdf = SIX
    for ours, theirs in zip(SIX_JOINTS, UR_JOINTS):
        urdf = urdf.replace(f'name="{ours}"', f'name="{theirs}"')
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=["--ros-args", "--params-file",
                                  str(Path(__file__).resolve().parents[1] / "config" / "recorder_spacenav.yaml")])
    try:
        rec = TeleopRecorder(context=ctx, parameter_overrides=params(
            dataset_path=str(tmp_path / "demos"), robot_description=urdf, cameras=[""]))
        try:
            assert rec.cartesian.ready and rec.cartesian.input == "joy"
            assert rec.teleop.config.enabled == ("x", "y", "z", "roll", "pitch", "yaw")
            assert rec.cartesian.gripper_buttons["toggle"] == 0 and rec._buttons["start"] == 1
            assert rec.limits.max_velocity.tolist() == [0.5] * 6
        finally:
            rec.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
