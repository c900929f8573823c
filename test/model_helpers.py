"""Small model configurations and observation windows shared by the model tests."""
import numpy as np

from dp_ros.model import (
    CameraConfig, LowdimConfig, ObsConfig, PolicyConfig, TransformerConfig, UNetConfig, VisionConfig,
)
from dp_ros.model.presets import example_window

J = 3


def tiny_config(denoiser="unet", head="diffusion", shared=False) -> PolicyConfig:
    return PolicyConfig(
        joint_names=("a", "b", "c"),
        dt=0.1,
        obs=ObsConfig(
            cameras=(CameraConfig("left", 40, 48, 32, 40), CameraConfig("right", 40, 48, 32, 40)),
            lowdim=(LowdimConfig("joint_pos", J),),
        ),
        n_obs_steps=2,
        horizon=8,
        n_action_steps=4,
        head=head,
        denoiser=denoiser,
        vision=VisionConfig(num_keypoints=8, feature_dim=16, shared=shared),
        unet=UNetConfig(down_dims=(16, 32), step_embed_dim=16),
        transformer=TransformerConfig(n_layer=2, n_head=2, n_emb=32),
    ).validate()


def window(cfg, rng=None):
    return example_window(cfg, rng or np.random.default_rng(0))
