"""Record teleoperated demonstrations into a dataset.

    ros2 launch dp_ros record.launch.py dataset_path:=~/demos/pick_cube
    ros2 launch dp_ros record.launch.py dataset_path:=~/demos/pick_cube params_file:=my_recorder.yaml

Parameters come from config/recorder.yaml (joints, cameras, the teleop device and its
mapping); dataset_path, controller_topic and use_sim_time override the file only when
they are given. For a gamepad, also run the joy driver (``ros2 run joy joy_node``);
for a SpaceMouse, spacenav (``ros2 run spacenav spacenav_node``) with
config/recorder_spacenav.yaml (Cartesian teleop, docs/teleop.md). Episodes:
``ros2 service call /teleop_recorder/start_episode std_srvs/srv/Trigger`` (and
stop_episode, discard_episode), or the Joy buttons set in the parameters.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _recorder_node(context):
    def given(name):
        return LaunchConfiguration(name).perform(context).strip()

    overrides = {}
    if given("dataset_path"):
        overrides["dataset_path"] = given("dataset_path")
    if given("controller_topic"):
        overrides["trajectory_topic"] = given("controller_topic")
    if given("use_sim_time"):
        if given("use_sim_time").lower() not in ("true", "false"):
            raise ValueError(f"use_sim_time:={given('use_sim_time')} must be true or false")
        overrides["use_sim_time"] = given("use_sim_time").lower() == "true"
    return [Node(
        package="dp_ros",
        executable="teleop_recorder",
        name="teleop_recorder",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), *([overrides] if overrides else [])],
    )]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("dataset_path", default_value="",
                              description="dataset directory (created or appended to); empty: the params file's"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare("dp_ros"), "config", "recorder.yaml"]),
                              description="parameter file for the recorder"),
        DeclareLaunchArgument("controller_topic", default_value="",
                              description="the joint_trajectory_controller's trajectory topic; empty: the params "
                                          "file's, else /joint_trajectory_controller/joint_trajectory"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace for the node"),
        DeclareLaunchArgument("use_sim_time", default_value="",
                              description="true to follow /clock; empty: the params file's, else false"),
        OpaqueFunction(function=_recorder_node),
    ])
