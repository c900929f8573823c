"""Shapes, dtypes and behaviour of the encoder, both denoisers and the policy API."""
import dataclasses

import numpy as np
import pytest
import torch

from dp_ros.core.seams import Guide
from dp_ros.model import TransformerConfig, UNetConfig, build_policy
from dp_ros.model.presets import placeholder_normalizer
from dp_ros.model.transformer import TransformerDenoiser
from dp_ros.model.unet1d import ConditionalUnet1D
from dp_ros.model.vision import CameraEncoders, SpatialSoftmax, crop_images

from model_helpers import J, example_guide, tiny_config, window


def test_spatial_softmax_keypoints_in_range():
    ss = SpatialSoftmax(8, 5, 7, num_keypoints=4)
    out = ss(torch.randn(3, 8, 5, 7))
    assert out.shape == (3, 8) and out.abs().max() <= 1.0


def test_crop_center_and_random():
    img = torch.arange(2 * 3 * 6 * 8, dtype=torch.float32).reshape(2, 3, 6, 8)
    center = crop_images(img, 4, 4, random=False)
    assert torch.equal(center, img[:, :, 1:5, 2:6])
    torch.manual_seed(0)
    rand = crop_images(img, 4, 4, random=True)
    assert rand.shape == (2, 3, 4, 4)
    # Every random crop is a contiguous window of its own image.
    for n in range(2):
        found = any(torch.equal(rand[n], img[n, :, t:t + 4, l:l + 4]) for t in range(3) for l in range(5))
        assert found


@pytest.mark.parametrize("shared", [False, True])
def test_camera_encoders_shape(shared):
    cfg = tiny_config(shared=shared)
    enc = CameraEncoders(cfg.obs.cameras, cfg.vision).eval()
    imgs = {c.name: torch.randint(0, 256, (2, 2, 40, 48, 3), dtype=torch.uint8) for c in cfg.obs.cameras}
    out = enc(imgs)
    assert out.shape == (2, 2, 2 * 16) and out.dtype == torch.float32
    assert len(list(enc.encoders)) == (1 if shared else 2)
    # GroupNorm everywhere, no BatchNorm.
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in enc.modules())


def test_unet_shapes():
    net = ConditionalUnet1D(action_dim=J, global_cond_dim=10, cfg=UNetConfig(down_dims=(16, 32, 64), step_embed_dim=16))
    out = net(torch.randn(4, 16, J), torch.randint(0, 100, (4,)), torch.randn(4, 10))
    assert out.shape == (4, 16, J) and out.dtype == torch.float32


def test_transformer_shapes_and_causality():
    net = TransformerDenoiser(J, 8, obs_dim=10, n_obs_steps=2,
                              cfg=TransformerConfig(n_layer=2, n_head=2, n_emb=32, p_drop_attn=0.0)).eval()
    x = torch.randn(2, 8, J)
    k = torch.tensor([5, 50])
    cond = torch.randn(2, 2, 10)
    out = net(x, k, cond)
    assert out.shape == (2, 8, J)
    # Causal self-attention: changing a later action token does not change earlier outputs.
    x2 = x.clone()
    x2[:, 5:] += 1.0
    out2 = net(x2, k, cond)
    assert torch.allclose(out[:, :5], out2[:, :5], atol=1e-5)
    assert not torch.allclose(out[:, 5:], out2[:, 5:])


@pytest.mark.parametrize("denoiser", ["unet", "transformer"])
def test_predict_chunk_shape_dtype_and_determinism(denoiser):
    cfg = tiny_config(denoiser)
    policy = build_policy(cfg, placeholder_normalizer(cfg))
    obs = window(cfg)
    noise = torch.randn(cfg.horizon, J, generator=torch.Generator().manual_seed(3))
    a = policy.predict_chunk(obs, noise=noise)
    b = policy.predict_chunk(obs, noise=noise)
    assert a.shape == (cfg.horizon, J) and a.dtype == np.float64
    assert np.array_equal(a, b)
    # Actions are in joint units: within the action statistics' range (clipped in [-1, 1]).
    assert np.all(np.abs(a) <= 1.0 + 1e-6)
    # Without fixed noise, reset(seed) makes the draw reproducible.
    policy.reset(seed=7)
    c = policy.predict_chunk(obs)
    policy.reset(seed=7)
    assert np.array_equal(c, policy.predict_chunk(obs))
    # Fewer DDIM steps is a valid, different computation.
    d = policy.predict_chunk(obs, noise=noise, num_inference_steps=2)
    assert d.shape == a.shape and not np.array_equal(a, d)


def test_predict_chunk_rejects_bad_windows():
    cfg = tiny_config()
    policy = build_policy(cfg, placeholder_normalizer(cfg))
    obs = window(cfg)
    bad = dict(obs, left=obs["left"][:, :20])
    with pytest.raises(ValueError, match="'left' has shape \\(2, 20, 48, 3\\); expected \\(2, 40, 48, 3\\)"):
        policy.predict_chunk(bad)
    with pytest.raises(ValueError, match="camera 'left' must be uint8"):
        policy.predict_chunk(dict(obs, left=obs["left"].astype(np.float32)))
    with pytest.raises(ValueError, match="missing 'right'"):
        policy.predict_chunk({k: v for k, v in obs.items() if k != "right"})
    nan = obs["joint_pos"].copy()
    nan[0, 1] = np.nan
    with pytest.raises(ValueError, match="'joint_pos' contains NaN"):
        policy.predict_chunk(dict(obs, joint_pos=nan))
    with pytest.raises(ValueError, match="noise has shape"):
        policy.predict_chunk(obs, noise=torch.zeros(3, 3))


@pytest.mark.parametrize("head,denoiser,net", [("diffusion", "unet", "mlp"), ("diffusion", "transformer", "mlp"),
                                               ("regression", "unet", "mlp"), ("regression", "unet", "denoiser"),
                                               ("regression", "transformer", "denoiser")])
def test_compute_loss_backpropagates(head, denoiser, net):
    cfg = dataclasses.replace(tiny_config(denoiser, head), regression_net=net).validate()
    policy = build_policy(cfg, placeholder_normalizer(cfg)).train()
    rng = np.random.default_rng(0)
    obs = {k: torch.as_tensor(np.stack([window(cfg, rng)[k] for _ in range(3)])) for k in cfg.obs.keys}
    loss = policy.compute_loss({"obs": obs, "action": torch.rand(3, cfg.horizon, J) * 2 - 1})
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in policy.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "every parameter takes part in the loss"


@pytest.mark.parametrize("denoiser", ["unet", "transformer"])
def test_the_regression_baseline_can_be_the_diffusion_network_itself(denoiser):
    """regression_net=denoiser: the MSE baseline has exactly the diffusion policy's
    parameters (same names, same shapes), so only the objective differs."""
    diffusion = tiny_config(denoiser)
    regression = dataclasses.replace(diffusion, head="regression", regression_net="denoiser").validate()
    shapes = [{k: v.shape for k, v in build_policy(c, placeholder_normalizer(c)).state_dict().items()}
              for c in (diffusion, regression)]
    assert shapes[0] == shapes[1]
    policy = build_policy(regression, placeholder_normalizer(regression))
    obs = window(regression)
    out = policy.predict_chunk(obs)
    assert out.shape == (regression.horizon, J) and np.isfinite(out).all()
    assert np.array_equal(out, policy.predict_chunk(obs, noise=torch.randn(regression.horizon, J)))  # no noise
    with pytest.raises(ValueError, match="regression_net 'cnn' must be one of"):
        dataclasses.replace(regression, regression_net="cnn").validate()


def test_normalizer_must_match_config():
    cfg = tiny_config()
    other = dataclasses.replace(cfg, joint_names=("a", "b"))
    with pytest.raises(ValueError, match="action statistics have 2 dimensions, but the policy has 3 joints"):
        build_policy(cfg, placeholder_normalizer(other.validate()))


@pytest.mark.parametrize("denoiser", ["unet", "transformer"])
def test_guided_denoising_fixes_the_prefix_and_leaves_the_rest_to_the_network(denoiser):
    """Seam mode inpaint (noise.guide_sample): an all-zero guide is the unguided sampler bit
    for bit; actions with weight 1 come out as the committed ones; weight 0 stays free."""
    cfg = tiny_config(denoiser)
    policy = build_policy(cfg, placeholder_normalizer(cfg))
    obs = window(cfg)
    noise = torch.randn(cfg.horizon, J, generator=torch.Generator().manual_seed(3))
    free = policy.predict_chunk(obs, noise=noise)
    assert np.array_equal(policy.predict_chunk(obs, noise=noise, guide=Guide.none(cfg.horizon, J)), free)
    guide = example_guide(cfg.horizon, J)
    got = policy.predict_chunk(obs, noise=noise, guide=guide)
    fixed, soft = guide.mask == 1, (guide.mask > 0) & (guide.mask < 1)
    assert fixed.sum() == 3 and soft.sum() == 3
    np.testing.assert_allclose(got[fixed], guide.targets[fixed], atol=1e-6)
    assert not np.allclose(got[soft], guide.targets[soft], atol=1e-3)
    assert not np.allclose(got[~fixed & ~soft], free[~fixed & ~soft], atol=1e-6)  # guided from the start
    with pytest.raises(ValueError, match="guide has targets"):
        policy.predict_chunk(obs, noise=noise, guide=Guide.none(cfg.horizon + 1, J))


def test_imported_vision_options_batchnorm_avgpool_relu_and_image_normalization():
    """The encoder variants imported policies use (docs/interop.md)."""
    from dp_ros.core.normalizer import Affine

    cfg = tiny_config()
    cam = cfg.obs.cameras[0]
    bn = dataclasses.replace(cfg.vision, norm="batch", feature_activation="relu")
    enc = CameraEncoders(cfg.obs.cameras[:1], bn).eval()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in enc.modules())
    imgs = {cam.name: torch.randint(0, 256, (2, 2, 40, 48, 3), dtype=torch.uint8)}
    assert enc(imgs).min() >= 0  # the ReLU after the projection
    avg = dataclasses.replace(cfg.vision, pool="avg", feature_dim=8 * cfg.vision.width)
    enc = CameraEncoders(cfg.obs.cameras[:1], avg).eval()
    assert enc(imgs).shape == (2, 2, 8 * cfg.vision.width)
    with pytest.raises(ValueError, match="pool 'avg' gives 8 \\* width"):
        dataclasses.replace(cfg.vision, pool="avg").validate()
    with pytest.raises(ValueError, match="norm 'layer' must be one of"):
        dataclasses.replace(cfg.vision, norm="layer").validate()
    # A per-channel normalization is the same as feeding the normalized image.
    scale, offset = np.array([2.0, 1.0, 0.5]), np.array([-1.0, 0.0, 0.25])
    plain = CameraEncoders(cfg.obs.cameras[:1], cfg.vision).eval()
    normed = CameraEncoders(cfg.obs.cameras[:1], cfg.vision, {cam.name: (scale, offset)}).eval()
    normed.load_state_dict(plain.state_dict())
    enc0 = plain.encoders[cam.name]
    x = imgs[cam.name].reshape(4, 40, 48, 3).permute(0, 3, 1, 2).float() / 255.0
    x = x * torch.tensor(scale, dtype=torch.float32).reshape(1, 3, 1, 1) \
        + torch.tensor(offset, dtype=torch.float32).reshape(1, 3, 1, 1)
    x = crop_images(x, cam.crop_height, cam.crop_width, random=False)
    with torch.no_grad():
        assert torch.allclose(normed(imgs).reshape(4, -1), enc0(x), atol=1e-6)
    # Through the policy: statistics under the camera's name, one per channel.
    norm = placeholder_normalizer(cfg)
    norm.stats[cam.name] = Affine(scale, offset)
    build_policy(cfg, norm)
    norm.stats[cam.name] = Affine(np.ones(2), np.zeros(2))
    with pytest.raises(ValueError, match="one per RGB channel"):
        build_policy(cfg, norm)


def test_center_crop_floor_or_torchvision_round():
    img = torch.arange(9 * 9, dtype=torch.float32).reshape(1, 1, 9, 9)
    # margin 3: floor starts at 1, Python's round(1.5) = 2 (torchvision's CenterCrop)
    assert torch.equal(crop_images(img, 6, 6, False, "floor"), img[:, :, 1:7, 1:7])
    assert torch.equal(crop_images(img, 6, 6, False, "round"), img[:, :, 2:8, 2:8])
    # margin 5: round(2.5) = 2, the same as floor
    assert torch.equal(crop_images(img, 4, 4, False, "round"), img[:, :, 2:6, 2:6])


def test_unclipped_sampling_and_clip_range():
    from dp_ros.model.noise import ddim_plan
    from dp_ros.model import NoiseConfig

    x, out = torch.full((1, 2, 1), 0.5), torch.full((1, 2, 1), 3.0)
    for clip, expect in ((True, 1.0), (False, 3.0)):
        plan = ddim_plan(NoiseConfig(num_train_steps=10, num_inference_steps=1, prediction_type="sample",
                                     timestep_spacing="leading", clip_sample=clip))
        # one step to the end: the result is the (clipped) x0
        assert torch.allclose(plan.step(0, x, out), torch.full_like(x, expect))
    plan = ddim_plan(NoiseConfig(num_train_steps=10, num_inference_steps=1, prediction_type="sample",
                                 timestep_spacing="leading", clip_sample_range=2.0))
    assert torch.allclose(plan.step(0, x, out), torch.full_like(x, 2.0))
    with pytest.raises(ValueError, match="clip_sample_range"):
        NoiseConfig(clip_sample_range=0.0).validate()
