"""The launch files' logic, run against a stand-in for launch and launch_ros (which cannot
be installed here): which nodes start, with which parameter sources in which order.

launch_ros applies a node's ``parameters`` in order, later entries winning. The launch
arguments must override the user's params file only when given (issue 14.14: the
defaults of model_path and controller_topic used to replace the file's values), and
sim.launch.py's mode must pick its node with the current condition form (issue 14.15).
"""
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


class Context:
    def __init__(self, configs):
        self.launch_configurations = dict(configs)


def _perform(value, context):
    return value.perform(context) if hasattr(value, "perform") else str(value)


class LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context.launch_configurations[self.name]


class PathJoinSubstitution:
    def __init__(self, parts):
        self.parts = parts

    def perform(self, context):
        return "/".join(_perform(p, context) for p in self.parts)


class FindPackageShare:
    def __init__(self, package):
        self.package = package

    def perform(self, context):
        return str(ROOT)  # the installed share directory holds config/ as the repository does


class PythonExpression:
    def __init__(self, parts):
        self.parts = parts

    def perform(self, context):
        return str(eval("".join(_perform(p, context) for p in self.parts)))


class IfCondition:
    def __init__(self, predicate):
        self.predicate = predicate

    def evaluate(self, context):
        return _perform(self.predicate, context).lower() == "true"


class DeclareLaunchArgument:
    def __init__(self, name, default_value=None, description=""):
        self.name, self.default_value = name, default_value


class OpaqueFunction:
    def __init__(self, function):
        self.function = function


class Node:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class LaunchDescription:
    def __init__(self, entities):
        self.entities = entities


@pytest.fixture
def stand_in(monkeypatch):
    modules = {
        "launch": dict(LaunchDescription=LaunchDescription),
        "launch.actions": dict(DeclareLaunchArgument=DeclareLaunchArgument, OpaqueFunction=OpaqueFunction),
        "launch.conditions": dict(IfCondition=IfCondition),
        "launch.substitutions": dict(LaunchConfiguration=LaunchConfiguration,
                                     PathJoinSubstitution=PathJoinSubstitution, PythonExpression=PythonExpression),
        "launch_ros": {},
        "launch_ros.actions": dict(Node=Node),
        "launch_ros.substitutions": dict(FindPackageShare=FindPackageShare),
        "launch_ros.parameter_descriptions": {},
    }
    for name, attrs in modules.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))


def launch(path, **args):
    """The nodes the launch file starts with these arguments, and the context."""
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    configs = {}
    for e in description.entities:
        if isinstance(e, DeclareLaunchArgument):
            configs[e.name] = args.pop(e.name, None)
            if configs[e.name] is None:
                if e.default_value is None:
                    raise ValueError(f"launch argument {e.name} is required")
                configs[e.name] = _perform(e.default_value, Context(configs))
    assert not args, f"unknown launch arguments {args}"
    context = Context(configs)
    nodes = []
    for e in description.entities:
        found = e.function(context) if isinstance(e, OpaqueFunction) else [e] if isinstance(e, Node) else []
        for n in found:
            condition = n.kwargs.get("condition")
            if condition is None or condition.evaluate(context):
                nodes.append(n)
    return nodes, context


def effective_parameters(node, context):
    """What the node ends up with: each params file's matching section, then each dict, in order."""
    out = {}
    name = node.kwargs["name"]
    for entry in node.kwargs["parameters"]:
        if isinstance(entry, dict):
            out.update({k: _perform(v, context) if hasattr(v, "perform") else v for k, v in entry.items()})
            continue
        data = yaml.safe_load(Path(_perform(entry, context)).read_text())
        for key in ("/**", f"/**/{name}"):
            out.update((data.get(key) or {}).get("ros__parameters", {}))
    return out


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_arm.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "model_path": "/models/from_file", "trajectory_topic": "/arm_controller/joint_trajectory",
        "dataset_path": "/demos/from_file", "use_sim_time": True, "max_joint_speed": 0.3}}}))
    return path


def test_policy_launch_keeps_the_users_file_unless_an_argument_is_given(stand_in, user_file):
    path = ROOT / "launch" / "policy.launch.py"
    (node,), ctx = launch(path, params_file=str(user_file))
    got = effective_parameters(node, ctx)
    assert got["model_path"] == "/models/from_file"
    assert got["trajectory_topic"] == "/arm_controller/joint_trajectory"
    assert got["use_sim_time"] is True and got["max_joint_speed"] == 0.3

    (node,), ctx = launch(path, params_file=str(user_file), model_path="/models/cli",
                          controller_topic="/other/joint_trajectory", use_sim_time="false", namespace="left")
    got = effective_parameters(node, ctx)
    assert got["model_path"] == "/models/cli" and got["trajectory_topic"] == "/other/joint_trajectory"
    assert got["use_sim_time"] is False and got["max_joint_speed"] == 0.3
    assert _perform(node.kwargs["namespace"], ctx) == "left"

    (node,), ctx = launch(path, model_path="sim_reach")  # the shipped file
    got = effective_parameters(node, ctx)
    assert got["model_path"] == "sim_reach" and "trajectory_topic" not in got  # the node's own default
    with pytest.raises(ValueError, match="use_sim_time:=yes must be true or false"):
        launch(path, use_sim_time="yes")


def test_record_launch_keeps_the_users_file_unless_an_argument_is_given(stand_in, user_file):
    path = ROOT / "launch" / "record.launch.py"
    (node,), ctx = launch(path, params_file=str(user_file))
    got = effective_parameters(node, ctx)
    assert got["dataset_path"] == "/demos/from_file" and got["trajectory_topic"] == "/arm_controller/joint_trajectory"
    (node,), ctx = launch(path, params_file=str(user_file), dataset_path="/demos/cli")
    assert effective_parameters(node, ctx)["dataset_path"] == "/demos/cli"


@pytest.mark.parametrize("mode, started", [("policy", {"sim_arm", "policy_node"}),
                                           ("record", {"sim_arm", "teleop_recorder"})])
def test_sim_launch_mode_picks_the_node(stand_in, mode, started):
    nodes, _ = launch(ROOT / "launch" / "sim.launch.py", mode=mode)
    assert {n.kwargs["executable"] for n in nodes} == started
