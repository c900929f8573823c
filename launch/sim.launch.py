"""The simulated arm, with the policy node or the teleop recorder.

    ros2 launch dp_ros sim.launch.py model_path:=/path/to/checkpoint            # run a policy
    ros2 launch dp_ros sim.launch.py mode:=record dataset_path:=~/demos/sim     # record demos

The simulator emulates a joint_trajectory_controller on
/joint_trajectory_controller/joint_trajectory and publishes /joint_states and
/camera/image_raw; the policy or recorder connect to those as they would to a real
arm. Render headless with MUJOCO_GL=egl (the default).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import LaunchConfigurationEquals
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    args = [
        DeclareLaunchArgument("mode", default_value="policy", description="policy or record"),
        DeclareLaunchArgument("model_path", default_value="", description="checkpoint for mode:=policy"),
        DeclareLaunchArgument("dataset_path", default_value="", description="dataset for mode:=record"),
        DeclareLaunchArgument("seed", default_value="0", description="seed of the target positions"),
    ]
    sim = Node(package="dp_ros", executable="sim_arm", name="sim_arm", output="screen",
               parameters=[{"seed": LaunchConfiguration("seed")}])
    policy = Node(
        package="dp_ros", executable="policy_node", name="dp_policy", output="screen",
        condition=LaunchConfigurationEquals("mode", "policy"),
        parameters=[PathJoinSubstitution([FindPackageShare("dp_ros"), "config", "policy.yaml"]),
                    {"model_path": LaunchConfiguration("model_path"), "enabled_on_start": True}],
    )
    recorder = Node(
        package="dp_ros", executable="teleop_recorder", name="teleop_recorder", output="screen",
        condition=LaunchConfigurationEquals("mode", "record"),
        parameters=[{"dataset_path": LaunchConfiguration("dataset_path"),
                     "joint_names": ["base_yaw", "shoulder", "elbow", "wrist"], "cameras": ["camera"],
                     "image_height": 96, "image_width": 96}],
    )
    return LaunchDescription([*args, sim, policy, recorder])
