"""The core and model layers import with rclpy absent; the core imports no torch."""
import subprocess
import sys

CHECK = """
import sys
sys.modules['rclpy'] = None  # any 'import rclpy' now raises ImportError
import dp_ros.core.normalizer
import dp_ros.model, dp_ros.model.checkpoint, dp_ros.model.presets, dp_ros.bench.model_bench
import dp_ros.imaging, dp_ros.runtime, dp_ros.runtime.loop, dp_ros.runtime.replay
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosidl_runtime_py', 'sensor_msgs'))
assert not [m for m in loaded if sys.modules[m] is not None], loaded
"""

CORE_ONLY = """
import sys
import dp_ros.core.normalizer, dp_ros.core.obs_buffer, dp_ros.core.chunking, dp_ros.core.safety
import dp_ros.core.trajectory_rules, dp_ros.core.urdf, dp_ros.core.command, dp_ros.core.motion
import dp_ros.core.cartesian
assert 'torch' not in sys.modules, 'the pure core must not import torch'
assert 'pinocchio' not in sys.modules, 'kinematics come into the core from outside (dp_ros.kinematics)'
assert 'rclpy' not in sys.modules
"""


def test_model_imports_without_rclpy():
    subprocess.run([sys.executable, "-c", CHECK], check=True)


def test_core_imports_neither_torch_nor_rclpy():
    subprocess.run([sys.executable, "-c", CORE_ONLY], check=True)


CLI_LAZY = """
import sys
for name in ('rclpy', 'zarr', 'rosbags', 'cv2'):
    sys.modules[name] = None  # importing any of them now raises ImportError
from dp_ros.cli import build_parser
args = build_parser(['bench', 'backends', '--chunks', '3']).parse_args(['bench', 'backends', '--chunks', '3'])
assert args.chunks == 3 and args.func.__module__ == 'dp_ros.bench.backend_bench'
build_parser(['export', 'x']).parse_args(['export', 'x'])
"""


NODE_WITHOUT_INTEROP = """
import sys
for name in ('pyarrow', 'av'):
    sys.modules[name] = None  # the dataset converters' libraries: never on the policy node's path
import dp_ros.nodes.policy_node, dp_ros.nodes.teleop_recorder
"""


def test_the_nodes_import_without_the_dataset_converters_libraries():
    subprocess.run([sys.executable, "-c", NODE_WITHOUT_INTEROP], check=True)


def test_cli_imports_only_the_command_it_runs():
    # An inference box (or the GPU machine) runs bench and export without ROS, zarr or rosbags.
    subprocess.run([sys.executable, "-c", CLI_LAZY], check=True)
