"""launch/*.launch.py checked without launch_ros (it cannot be installed here).

They must import only launch and launch_ros, name only console scripts that setup.py
installs, name only files that exist, and use only launch arguments they declare;
every key of config/policy.yaml must be a parameter the policy node declares.
"""
import ast
from pathlib import Path

import pytest
import rclpy
import yaml

from ros_helpers import params

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))


def calls(tree, name):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == name) or (isinstance(f, ast.Attribute) and f.attr == name):
                yield node


def kwarg(call, name):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def console_scripts():
    tree = ast.parse((ROOT / "setup.py").read_text())
    scripts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "=" in node.value and ":" in node.value:
            scripts.add(node.value.split("=")[0].strip())
    return scripts


def test_there_is_a_policy_launch_file():
    assert (ROOT / "launch" / "policy.launch.py") in LAUNCH_FILES


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_thin_and_consistent(path):
    tree = ast.parse(path.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add(node.module.split(".")[0])
    assert roots <= {"launch", "launch_ros"}, f"{path.name} imports {sorted(roots)}"
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= {"launch", "launch.actions", "launch.conditions", "launch.substitutions", "launch_ros.actions",
                       "launch_ros.parameter_descriptions", "launch_ros.substitutions"}, modules
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)

    scripts = console_scripts()
    for call in calls(tree, "Node"):
        assert ast.literal_eval(kwarg(call, "package")) == "dp_ros"
        exe = ast.literal_eval(kwarg(call, "executable"))
        assert exe in scripts, f"{path.name} starts {exe!r}, which setup.py does not install"

    for call in calls(tree, "PathJoinSubstitution"):
        parts = [ast.literal_eval(e) for e in call.args[0].elts if isinstance(e, ast.Constant)]
        assert (ROOT.joinpath(*parts)).exists(), f"{path.name} names {'/'.join(parts)}, which does not exist"

    declared = {ast.literal_eval(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")}
    deprecated = [n for n in ("LaunchConfigurationEquals", "LaunchConfigurationNotEquals") if any(calls(tree, n))]
    assert not deprecated, f"{path.name} uses deprecated {deprecated}: use IfCondition(PythonExpression(...))"
    # Read directly, or by name inside an OpaqueFunction (through its helper `given`).
    used = {c.args[0].value for name in ("LaunchConfiguration", "given") for c in calls(tree, name)
            if isinstance(c.args[0], ast.Constant)}
    assert used <= declared, f"{path.name} uses undeclared launch arguments {sorted(used - declared)}"
    assert used == declared, f"{path.name} declares unused launch arguments {sorted(declared - used)}"


def test_policy_yaml_keys_are_declared_parameters(checkpoint):
    from dp_ros.nodes.policy_node import PolicyNode

    data = yaml.safe_load((ROOT / "config" / "policy.yaml").read_text())
    assert list(data) == ["/**"]
    keys = data["/**"]["ros__parameters"]
    ckpt = checkpoint  # the policy node tests' (its ONNX export is shared with them)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        # The file's values must be accepted as they are.
        node = PolicyNode(context=ctx, parameter_overrides=params(model_path=str(ckpt), **keys))
        missing = sorted(k for k in keys if not node.has_parameter(k))
        assert not missing, f"config/policy.yaml sets parameters the node does not declare: {missing}"
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_recorder_yaml_keys_are_declared_parameters(tmp_path):
    from dp_ros.nodes.teleop_recorder import TeleopRecorder

    data = yaml.safe_load((ROOT / "config" / "recorder.yaml").read_text())
    assert list(data) == ["/**"]
    keys = _flatten(data["/**"]["ros__parameters"])
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = TeleopRecorder(context=ctx, parameter_overrides=params(dataset_path=str(tmp_path / "d"), **keys))
        missing = sorted(k for k in keys if not node.has_parameter(k))
        assert not missing, f"config/recorder.yaml sets parameters the recorder does not declare: {missing}"
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_sim_yaml_keys_are_declared_parameters(tmp_path):
    from dp_ros.nodes.teleop_recorder import TeleopRecorder
    from dp_ros.sim.sim_node import SimArmNode

    data = yaml.safe_load((ROOT / "config" / "sim.yaml").read_text())
    assert sorted(data) == ["/**/sim_arm", "/**/teleop_recorder"]
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        for name, make, extra in (("sim_arm", SimArmNode, {}),
                                  ("teleop_recorder", TeleopRecorder, {"dataset_path": str(tmp_path / "d")})):
            keys = _flatten(data[f"/**/{name}"]["ros__parameters"])
            node = make(context=ctx, parameter_overrides=params(**extra, **keys))
            missing = sorted(k for k in keys if not node.has_parameter(k))
            assert not missing, f"config/sim.yaml sets parameters {name} does not declare: {missing}"
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
