"""The model: encoder, denoisers, noise schedules, policies and checkpoints (torch, no ROS)."""
from dp_ros.model.checkpoint import CheckpointError, checkpoint_hash, load_checkpoint, save_checkpoint
from dp_ros.model.config import (
    CameraConfig,
    LowdimConfig,
    NoiseConfig,
    ObsConfig,
    PolicyConfig,
    TransformerConfig,
    UNetConfig,
    VisionConfig,
)
from dp_ros.model.policy import DiffusionPolicy, RegressionPolicy, build_policy

__all__ = [
    "CameraConfig", "CheckpointError", "DiffusionPolicy", "LowdimConfig", "NoiseConfig",
    "ObsConfig", "PolicyConfig", "RegressionPolicy", "TransformerConfig", "UNetConfig",
    "VisionConfig", "build_policy", "checkpoint_hash", "load_checkpoint", "save_checkpoint",
]
