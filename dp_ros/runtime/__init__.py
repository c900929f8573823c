"""Running a checkpoint: backends behind one contract, chosen by name (torch; no ROS)."""
from dp_ros.runtime.backends import BACKENDS, BackendUnavailable, PolicyRunner, load_runner, resolve_model_path

__all__ = ["BACKENDS", "BackendUnavailable", "PolicyRunner", "load_runner", "resolve_model_path"]
