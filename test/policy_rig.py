"""The policy node in one process with fake cameras and joint states and a recorder of
what it publishes: the rig of test_policy_node.py and test_policy_node_contract.py
(its fixtures ``checkpoint`` and ``rig`` are registered by conftest.py)."""
import json

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from dp_ros.nodes.policy_node import PolicyNode

from ros_helpers import FakeSensors, Recorder, Spinner, make_checkpoint, params, wait_for

URDF = """<robot name="arm">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="l1"/>
    <limit lower="-0.05" upper="0.05" velocity="5.0" effort="10"/></joint>
  <joint name="elbow" type="revolute"><parent link="l1"/><child link="l2"/>
    <limit lower="-3" upper="3" velocity="0.2" effort="10"/></joint>
  <joint name="wrist" type="continuous"><parent link="l2"/><child link="l3"/></joint>
</robot>"""


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """One tiny checkpoint for every policy node test (its ONNX export, made by the first
    test that loads it with onnxruntime, is then reused). Never changed by a test."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "policy")


class Rig:
    def __init__(self, ctx, checkpoint, compressed=(), **overrides):
        kw = dict(model_path=str(checkpoint), enabled_on_start=True, max_obs_age=0.2, max_joint_speed=10.0)
        kw.update(overrides)
        self.ctx = ctx
        self.node = PolicyNode(context=ctx, parameter_overrides=params(**kw))
        self.sensors = FakeSensors(ctx, compressed=compressed)
        self.rec = Recorder(ctx, {
            "traj": (JointTrajectory, "/joint_trajectory_controller/joint_trajectory"),
            "diag": (DiagnosticArray, "/diagnostics"),
            "status": (String, "/dp_policy/status"),
        })
        self.spin = Spinner(ctx, self.node, self.sensors, self.rec)

    def trajectories(self):
        return self.rec.get("traj")

    def statuses(self):
        return [json.loads(m.data) for _, m in self.rec.get("status")]

    def diagnostics(self):
        return [m.status[0] for _, m in self.rec.get("diag")]

    def call(self, srv_type, name, request, timeout=5.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), name
        future = client.call_async(request)
        assert wait_for(future.done, timeout)
        return future.result()

    def set_params(self, **values):
        req = SetParameters.Request()
        for k, v in values.items():
            if isinstance(v, bool):
                pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=v)
            elif isinstance(v, str):
                pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=v)
            elif isinstance(v, int):
                pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
            else:
                pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(v))
            req.parameters.append(ParameterMsg(name=k, value=pv))
        return self.call(SetParameters, "/dp_policy/set_parameters", req).results

    def close(self):
        self.spin.stop()
        for n in (self.node, self.sensors, self.rec):
            n.destroy_node()


@pytest.fixture
def rig(ros, checkpoint):
    rigs = []

    def make(compressed=(), **overrides):
        r = Rig(ros, checkpoint, compressed=compressed, **overrides)
        rigs.append(r)
        return r

    yield make
    for r in rigs:
        r.close()


