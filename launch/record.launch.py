"""Record teleoperated demonstrations into a dataset.

    ros2 launch dp_ros record.launch.py dataset_path:=~/demos/pick_cube
    ros2 launch dp_ros record.launch.py dataset_path:=~/demos/pick_cube params_file:=my_recorder.yaml

Parameters come from config/recorder.yaml (joints, cameras, the teleop device and its
mapping); the arguments below override it. For a gamepad, also run the joy driver
(``ros2 run joy joy_node``); for a SpaceMouse, spacenav's joy output. Episodes:
``ros2 service call /teleop_recorder/start_episode std_srvs/srv/Trigger`` (and
stop_episode, discard_episode), or the Joy buttons set in the parameters.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    args = [
        DeclareLaunchArgument("dataset_path", description="dataset directory (created or appended to)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare("dp_ros"), "config", "recorder.yaml"]),
                              description="parameter file for the recorder"),
        DeclareLaunchArgument("controller_topic", default_value="/joint_trajectory_controller/joint_trajectory",
                              description="the joint_trajectory_controller's trajectory topic"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace for the node"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock"),
    ]
    node = Node(
        package="dp_ros",
        executable="teleop_recorder",
        name="teleop_recorder",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "dataset_path": LaunchConfiguration("dataset_path"),
                "trajectory_topic": LaunchConfiguration("controller_topic"),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
            },
        ],
    )
    return LaunchDescription([*args, node])
