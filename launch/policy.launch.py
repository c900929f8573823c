"""Start the Diffusion Policy node next to a ros2_control joint_trajectory_controller.

    ros2 launch dp_ros policy.launch.py model_path:=/path/to/checkpoint
    ros2 launch dp_ros policy.launch.py model_path:=my_task \\
        controller_topic:=/arm_controller/joint_trajectory namespace:=left use_sim_time:=true

Parameters come from config/policy.yaml (or params_file:=...); the arguments below
override it. The node starts disabled unless enabled_on_start is true: call
``ros2 service call /dp_policy/enable std_srvs/srv/SetBool "{data: true}"``.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    args = [
        DeclareLaunchArgument("model_path", default_value="",
                              description="checkpoint directory (or a name under the package's models/)"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([FindPackageShare("dp_ros"), "config", "policy.yaml"]),
                              description="parameter file for the policy node"),
        DeclareLaunchArgument("controller_topic", default_value="/joint_trajectory_controller/joint_trajectory",
                              description="the joint_trajectory_controller's trajectory topic"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace for the node"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock"),
    ]
    node = Node(
        package="dp_ros",
        executable="policy_node",
        name="dp_policy",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model_path": LaunchConfiguration("model_path"),
                "trajectory_topic": LaunchConfiguration("controller_topic"),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
            },
        ],
    )
    return LaunchDescription([*args, node])
