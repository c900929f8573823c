"""Parameter files apply under a namespace and to a renamed node (issue 14.13).

rcl matches a file's top-level key against the node's fully qualified name: a bare
``dp_policy:`` matches only ``/dp_policy``, so ``ros2 launch dp_ros policy.launch.py
namespace:=left`` silently ran on defaults. Every shipped file uses ``/**:`` (any node)
or ``/**/<name>:`` (that node under any namespace).
"""
import re
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.node import Node

from test_launch_static import _flatten

ROOT = Path(__file__).resolve().parents[1]
PARAM_FILES = sorted(p for p in (ROOT / "config").glob("*.yaml")
                     if "ros__parameters" in p.read_text())
KEY = re.compile(r"^/\*\*(/[A-Za-z_][A-Za-z0-9_]*)?$")


def overrides_seen(params_file, name, namespace):
    """The parameters a node of that name and namespace gets from the file."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=["--ros-args", "--params-file", str(params_file)])
    try:
        node = Node(name, namespace=namespace, context=ctx, automatically_declare_parameters_from_overrides=True)
        got = {p: node.get_parameter(p).value for p in node._parameters
               if p not in ("use_sim_time", "start_type_description_service")}
        node.destroy_node()
        return got
    finally:
        rclpy.try_shutdown(context=ctx)


def test_the_shipped_parameter_files_are_found():
    assert {p.name for p in PARAM_FILES} >= {"policy.yaml", "recorder.yaml", "sim.yaml"}


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_parameters_apply_under_a_namespace_and_a_new_name(path):
    data = yaml.safe_load(path.read_text())
    for key, section in data.items():
        assert KEY.match(key), f"{path.name}: top-level key {key!r} is not /** or /**/<node name>"
        want = _flatten(section["ros__parameters"])
        node_name = key.split("/")[-1] if key != "/**" else "dp_renamed"
        for namespace in ("", "left", "/robot/left"):
            got = overrides_seen(path, node_name, namespace)
            missing = {k: v for k, v in want.items() if got.get(k) != v}
            assert not missing, f"{path.name} [{key}] under namespace {namespace!r}: not applied {missing}"


def test_a_bare_node_name_is_ignored_under_a_namespace(tmp_path):
    """Why the files look as they do."""
    bare = tmp_path / "bare.yaml"
    bare.write_text("dp_policy:\n  ros__parameters:\n    max_obs_age: 0.5\n")
    assert overrides_seen(bare, "dp_policy", "") == {"max_obs_age": 0.5}
    assert overrides_seen(bare, "dp_policy", "left") == {}
