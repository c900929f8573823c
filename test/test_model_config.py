"""Configs validate themselves with errors a user can act on, and round-trip through dicts."""
import dataclasses
import json

import pytest

from dp_ros.model import CameraConfig, LowdimConfig, ObsConfig, PolicyConfig, UNetConfig
from dp_ros.model.presets import paper_real, sim_small


def base(**kw) -> PolicyConfig:
    defaults = dict(
        joint_names=("j1", "j2"),
        dt=0.1,
        obs=ObsConfig(lowdim=(LowdimConfig("joint_pos", 2),)),
    )
    defaults.update(kw)
    return PolicyConfig(**defaults)


def test_presets_validate():
    cfg = paper_real()
    assert cfg.action_dim == 7 and cfg.n_obs_steps == 2 and cfg.horizon == 16
    assert [c.crop_height for c in cfg.obs.cameras] == [216, 216]
    sim_small().validate()


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(horizon=18), "horizon (T_p) 18 must be divisible by 2**(len(down_dims)-1) = 4"),
        (dict(n_action_steps=16), "n_action_steps (T_a) 16 must be in 1..T_p - T_o + 1 = 15"),
        (dict(n_action_steps=0), "must be in 1..T_p - T_o + 1"),
        (dict(horizon=1, n_obs_steps=2), "horizon (T_p) 1 must be >= n_obs_steps"),
        (dict(joint_names=("a", "a")), "duplicates"),
        (dict(joint_names=()), "at least one joint"),
        (dict(dt=0.0), "dt 0.0 must be a positive"),
        (dict(action_time_offset=1.5), "action_time_offset 1.5 must be a number of seconds in [-1, 1]"),
        (dict(head="vae"), "head 'vae' must be one of"),
        (dict(denoiser="mlp"), "denoiser 'mlp' must be one of"),
        (dict(obs=ObsConfig()), "no cameras and no low-dimensional keys"),
        (dict(obs=ObsConfig(cameras=(CameraConfig("c", 100, 100, 120, 90),))), "larger than the image"),
        (dict(obs=ObsConfig(cameras=(CameraConfig("c", 40, 40, 24, 24),))), "at least 32x32"),
        (dict(obs=ObsConfig(cameras=(CameraConfig("x", 40, 40, 32, 32),), lowdim=(LowdimConfig("x", 2),))),
         "repeated: ['x']"),
        (dict(unet=UNetConfig(down_dims=(30, 60))), "divisible by n_groups"),
    ],
)
def test_invalid_configs_say_why(kw, message):
    with pytest.raises(ValueError) as exc:
        base(**kw).validate()
    assert message in str(exc.value)


def test_num_inference_steps_range():
    from dp_ros.model import NoiseConfig

    with pytest.raises(ValueError, match=r"num_inference_steps 101 must be in 1..num_train_steps \(100\)"):
        base(noise=NoiseConfig(num_inference_steps=101)).validate()


def test_roundtrip_through_json():
    cfg = paper_real("transformer")
    again = PolicyConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_from_dict_rejects_unknown_and_wrong_types():
    d = sim_small().to_dict()
    d["horizon_typo"] = 3
    with pytest.raises(ValueError, match="unknown keys \\['horizon_typo'\\]"):
        PolicyConfig.from_dict(d)
    d = sim_small().to_dict()
    d["horizon"] = "16"
    with pytest.raises(ValueError, match="policy.horizon: expected int"):
        PolicyConfig.from_dict(d)
    d = sim_small().to_dict()
    del d["joint_names"]
    with pytest.raises(ValueError, match="joint_names"):
        PolicyConfig.from_dict(d)


def test_validate_never_rewrites_fields():
    cfg = base(n_action_steps=3)
    assert dataclasses.replace(cfg).validate().n_action_steps == 3
