"""Start the Diffusion Policy node next to a ros2_control joint_trajectory_controller.

    ros2 launch dp_ros policy.launch.py model_path:=/path/to/checkpoint
    ros2 launch dp_ros policy.launch.py model_path:=my_task \\
        controller_topic:=/arm_controller/joint_trajectory namespace:=left use_sim_time:=true
    ros2 launch dp_ros policy.launch.py params_file:=my_arm.yaml      # model_path etc. in the file

Parameters come from config/policy.yaml (or params_file:=...). model_path,
controller_topic and use_sim_time override the file only when they are given: a
value in your own params file is not replaced by a launch default. The file's
top-level key must be /** (or /**/dp_policy) to apply under a namespace. The node
starts disabled unless enabled_on_start is true: call
``ros2 service call /dp_policy/enable std_srvs/srv/SetBool "{data: true}"``.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _policy_node(context):
    def given(name):
        return LaunchConfiguration(name).perform(context).strip()

    overrides = {}
    if given("model_path"):
        overrides["model_path"] = given("model_path")
    if given("controller_topic"):
        overrides["trajectory_topic"] = given("controller_topic")
    if given("use_sim_time"):
        if given("use_sim_time").lower() not in ("true", "false"):
            raise ValueError(f"use_sim_time:={given('use_sim_time')} must be true or false")
        overrides["use_sim_time"] = given("use_sim_time").lower() == "true"
    return [Node(
        package="dp_ros",
        executable="policy_node",
        name="dp_policy",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), *([overrides] if overrides else [])],
    )]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("model_path", default_value="",
                              description="checkpoint directory (or a name under the package's models/); "
                                          "empty: the params file's"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([FindPackageShare("dp_ros"), "config", "policy.yaml"]),
                              description="parameter file for the policy node"),
        DeclareLaunchArgument("controller_topic", default_value="",
                              description="the joint_trajectory_controller's trajectory topic; empty: the params "
                                          "file's, else /joint_trajectory_controller/joint_trajectory"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace for the node"),
        DeclareLaunchArgument("use_sim_time", default_value="",
                              description="true to follow /clock; empty: the params file's, else false"),
        OpaqueFunction(function=_policy_node),
    ])
