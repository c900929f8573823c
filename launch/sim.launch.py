"""The simulated arm, with the policy node or the teleop recorder.

    ros2 launch dp_ros sim.launch.py                                            # the bundled policy
    ros2 launch dp_ros sim.launch.py model_path:=/path/to/checkpoint            # another policy
    ros2 launch dp_ros sim.launch.py mode:=record dataset_path:=~/demos/sim     # record demos

The simulator emulates a joint_trajectory_controller on
/joint_trajectory_controller/joint_trajectory and publishes /joint_states,
/camera/image_raw and /targets; the policy or recorder connect to those as they would
to a real arm. The simulator and the recorder take config/sim.yaml, the policy node
config/policy.yaml: the same files `dp_ros sim eval` and `dp_ros sim record` pass.
Render headless with MUJOCO_GL=egl (the default).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _mode_is(mode):
    """True when mode:=<mode> (IfCondition with PythonExpression: the current form, in Humble too;
    LaunchConfigurationEquals is deprecated)."""
    return IfCondition(PythonExpression(["'", LaunchConfiguration("mode"), f"' == '{mode}'"]))


def generate_launch_description():
    args = [
        DeclareLaunchArgument("mode", default_value="policy", description="policy or record"),
        DeclareLaunchArgument("model_path", default_value="sim_reach",
                              description="checkpoint for mode:=policy (default: the bundled sim_reach)"),
        DeclareLaunchArgument("dataset_path", default_value="", description="dataset for mode:=record"),
        DeclareLaunchArgument("seed", default_value="0", description="seed of the target positions"),
    ]
    sim_yaml = PathJoinSubstitution([FindPackageShare("dp_ros"), "config", "sim.yaml"])
    sim = Node(package="dp_ros", executable="sim_arm", name="sim_arm", output="screen",
               parameters=[sim_yaml, {"seed": LaunchConfiguration("seed")}])
    policy = Node(
        package="dp_ros", executable="policy_node", name="dp_policy", output="screen",
        condition=_mode_is("policy"),
        parameters=[PathJoinSubstitution([FindPackageShare("dp_ros"), "config", "policy.yaml"]),
                    {"model_path": LaunchConfiguration("model_path"), "enabled_on_start": True}],
    )
    recorder = Node(
        package="dp_ros", executable="teleop_recorder", name="teleop_recorder", output="screen",
        condition=_mode_is("record"),
        parameters=[sim_yaml, {"dataset_path": LaunchConfiguration("dataset_path")}],
    )
    return LaunchDescription([*args, sim, policy, recorder])
