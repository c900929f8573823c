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


# Backend parity tolerances, in joint units (the tiny models' actions span [-1, 1]).
FP32_TOL = 1e-4
FP16_TOL = 2e-2


def diffusion_checkpoint(tmp_path, denoiser="unet", prediction="epsilon", name="ckpt"):
    """A saved tiny diffusion policy with seeded random weights."""
    import dataclasses

    import torch

    from dp_ros.model import build_policy, save_checkpoint
    from dp_ros.model.presets import placeholder_normalizer

    cfg = tiny_config(denoiser)
    cfg = dataclasses.replace(cfg, noise=dataclasses.replace(cfg.noise, prediction_type=prediction)).validate()
    torch.manual_seed(0)
    return save_checkpoint(build_policy(cfg, placeholder_normalizer(cfg)), tmp_path / name)


def reference_chunk(ckpt, obs, noise, steps, guide=None):
    """The PyTorch FP32 chunk for this observation and initial noise (and inpainting guide)."""
    import torch

    from dp_ros.model import load_checkpoint

    return load_checkpoint(ckpt).predict_chunk(obs, noise=torch.as_tensor(noise), num_inference_steps=steps,
                                               guide=guide)


def example_guide(horizon, joints, seed=0):
    """A guide as the seam mode inpaint makes one: the first 3 actions fixed, 3 fading, the rest free."""
    from dp_ros.core.seams import Guide, soft_mask

    rng = np.random.default_rng(seed)
    return Guide(rng.uniform(-0.5, 0.5, (horizon, joints)), soft_mask(np.arange(horizon, dtype=float), 2.0, 99.0, 3))
