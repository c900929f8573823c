"""Other libraries' feature names as dp_ros observation keys (no torch, no pyarrow): shared
by the policy importers and the LeRobot dataset converters."""
from __future__ import annotations

import re

# LeRobot's feature names and the dp_ros keys they map to.
STATE = "observation.state"  # -> joint_pos
ACTION = "action"
IMAGES = "observation.images."  # observation.images.NAME -> camera NAME
SINGLE_IMAGE = "observation.image"  # older single-camera datasets and policies -> camera "image"
ENV_FEATURE = "observation.environment_state"  # -> state environment_state
JOINTS = "joint_pos"
ENV_KEY = "environment_state"


def sanitize_name(name: str) -> str:
    """A feature name as an observation key: letters, digits and underscores."""
    out = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_")
    return out or "camera"


def lerobot_camera(feature: str) -> str:
    """observation.images.NAME -> NAME; observation.image (one camera) -> image."""
    return sanitize_name(feature[len(IMAGES):] if feature.startswith(IMAGES) else feature.removeprefix("observation."))


def lerobot_state(feature: str) -> str:
    """observation.environment_state -> environment_state; observation.K -> K."""
    return ENV_KEY if feature == ENV_FEATURE else sanitize_name(feature.removeprefix("observation."))
