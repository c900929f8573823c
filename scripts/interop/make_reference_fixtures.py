"""Regenerate the reference Diffusion Policy parity fixtures (test/fixtures/interop/reference/)
with the reference code itself (real-stanford/diffusion_policy), in a separate environment:

    PYTHONPATH=/path/to/diffusion_policy-checkout /path/to/venv/bin/python \
        scripts/interop/make_reference_fixtures.py

(docs/interop.md lists the packages: diffusers, robomimic 0.2.0, omegaconf, hydra-core,
dill, zarr 2 ...). Each case builds one of the reference's U-Net policies small, saves it
with the reference's own ``BaseWorkspace.save_checkpoint`` (a dill pickle holding the
OmegaConf config with its ``${...}`` interpolations, the model, EMA model and optimizer
state), and records observations, the initial noise and the chunk ``predict_action``
returns (``action_pred``, all T_p steps) for the EMA weights and for the trained ones.

Weights are seeded stand-ins (test/interop_weights.py): seed for the model, seed + 1 for
the EMA model. For image policies the ResNet-18 storages (44 MB each) are cut out of
the .ckpt zip and listed in ``storages.json``; the test writes them back from the seed.
A DDPM-configured policy is sampled with diffusers' DDIMScheduler built from the same
training schedule (dp_ros samples with deterministic DDIM).
"""
from __future__ import annotations

import copy
import json
import shutil
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test"))
from interop_weights import seeded_state  # noqa: E402

from diffusion_policy.model.common.normalizer import LinearNormalizer  # noqa: E402
from diffusion_policy.common.normalize_util import get_image_range_normalizer  # noqa: E402
from diffusion_policy.model.diffusion.conditional_unet1d import ConditionalUnet1D  # noqa: E402
from diffusion_policy.model.vision.model_getter import get_resnet  # noqa: E402
from diffusion_policy.model.vision.multi_image_obs_encoder import MultiImageObsEncoder  # noqa: E402
from diffusion_policy.policy.diffusion_unet_hybrid_image_policy import DiffusionUnetHybridImagePolicy  # noqa: E402
from diffusion_policy.policy.diffusion_unet_image_policy import DiffusionUnetImagePolicy  # noqa: E402
from diffusion_policy.policy.diffusion_unet_lowdim_policy import DiffusionUnetLowdimPolicy  # noqa: E402
from diffusion_policy.workspace.base_workspace import BaseWorkspace  # noqa: E402

OUT = ROOT / "test" / "fixtures" / "interop" / "reference"
SEED, N_SAMPLES = 4321, 2
DDIM = {"_target_": "diffusers.schedulers.scheduling_ddim.DDIMScheduler", "num_train_timesteps": 100,
        "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "squaredcos_cap_v2", "clip_sample": True,
        "set_alpha_to_one": True, "steps_offset": 0, "prediction_type": "epsilon"}
DDPM = {"_target_": "diffusers.schedulers.scheduling_ddpm.DDPMScheduler", "num_train_timesteps": 100,
        "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "squaredcos_cap_v2",
        "variance_type": "fixed_small", "clip_sample": True, "prediction_type": "sample"}


def scheduler(spec: dict):
    kwargs = {k: v for k, v in spec.items() if k != "_target_"}
    return DDIMScheduler(**kwargs) if spec["_target_"].endswith("DDIMScheduler") else DDPMScheduler(**kwargs)


def cfg_for(policy: dict, shape_meta: dict, task_name: str, **top) -> OmegaConf:
    """A workspace config shaped like the reference's (policy fields interpolated from the top)."""
    return OmegaConf.create({
        "name": "train_fixture", "_target_": "diffusion_policy.workspace.train_fixture.TrainFixtureWorkspace",
        "task_name": task_name, "shape_meta": shape_meta, "exp_name": "default",
        "horizon": top["horizon"], "n_obs_steps": top["n_obs_steps"], "n_action_steps": top["n_action_steps"],
        "n_latency_steps": 0, "dataset_obs_steps": "${n_obs_steps}", "past_action_visible": False,
        "keypoint_visible_rate": 1.0, "obs_as_global_cond": True,
        "task": {"name": task_name, "shape_meta": shape_meta},
        "policy": policy,
        "ema": {"_target_": "diffusion_policy.model.diffusion.ema_model.EMAModel", "power": 0.75},
        "training": {"seed": 42, "device": "cuda:0", "use_ema": True, "num_epochs": 1},
    })


def hybrid_case():
    shape_meta = {"obs": {"image": {"shape": [3, 43, 48], "type": "rgb"},
                          "agent_pos": {"shape": [2], "type": "low_dim"}},
                  "action": {"shape": [2]}}
    policy_cfg = {"_target_": "diffusion_policy.policy.diffusion_unet_hybrid_image_policy."
                              "DiffusionUnetHybridImagePolicy",
                  "shape_meta": "${shape_meta}", "noise_scheduler": DDIM, "horizon": "${horizon}",
                  "n_action_steps": "${eval:'${n_action_steps}+${n_latency_steps}'}",
                  "n_obs_steps": "${n_obs_steps}", "num_inference_steps": 10, "obs_as_global_cond": True,
                  "crop_shape": [40, 40], "diffusion_step_embed_dim": 32, "down_dims": [16, 32, 64],
                  "kernel_size": 5, "n_groups": 8, "cond_predict_scale": True, "obs_encoder_group_norm": True,
                  "eval_fixed_crop": True}
    top = dict(horizon=16, n_obs_steps=2, n_action_steps=8)
    policy = DiffusionUnetHybridImagePolicy(
        shape_meta=shape_meta, noise_scheduler=scheduler(DDIM), horizon=16, n_action_steps=8, n_obs_steps=2,
        num_inference_steps=10, crop_shape=(40, 40), diffusion_step_embed_dim=32, down_dims=(16, 32, 64),
        obs_encoder_group_norm=True, eval_fixed_crop=True)
    return policy, cfg_for(policy_cfg, shape_meta, "fixture_hybrid", **top), shape_meta


def image_case():
    shape_meta = {"obs": {"wrist": {"shape": [3, 36, 40], "type": "rgb"},
                          "front": {"shape": [3, 36, 40], "type": "rgb"},
                          "eef": {"shape": [3], "type": "low_dim"},
                          "agent_pos": {"shape": [3], "type": "low_dim"}},
                  "action": {"shape": [3]}}
    encoder_cfg = {"_target_": "diffusion_policy.model.vision.multi_image_obs_encoder.MultiImageObsEncoder",
                   "shape_meta": "${shape_meta}",
                   "rgb_model": {"_target_": "diffusion_policy.model.vision.model_getter.get_resnet",
                                 "name": "resnet18", "weights": None},
                   "resize_shape": None, "crop_shape": [33, 36], "random_crop": True, "use_group_norm": True,
                   "share_rgb_model": False, "imagenet_norm": True}
    policy_cfg = {"_target_": "diffusion_policy.policy.diffusion_unet_image_policy.DiffusionUnetImagePolicy",
                  "shape_meta": "${shape_meta}", "noise_scheduler": DDPM, "obs_encoder": encoder_cfg,
                  "horizon": "${horizon}", "n_action_steps": "${n_action_steps}", "n_obs_steps": "${n_obs_steps}",
                  "num_inference_steps": 8, "obs_as_global_cond": True, "diffusion_step_embed_dim": 16,
                  "down_dims": [16, 32], "kernel_size": 3, "n_groups": 4, "cond_predict_scale": False}
    encoder = MultiImageObsEncoder(shape_meta=shape_meta, rgb_model=get_resnet("resnet18", weights=None),
                                   crop_shape=(33, 36), random_crop=True, use_group_norm=True,
                                   share_rgb_model=False, imagenet_norm=True)
    policy = DiffusionUnetImagePolicy(
        shape_meta=shape_meta, noise_scheduler=scheduler(DDPM), obs_encoder=encoder, horizon=8, n_action_steps=4,
        n_obs_steps=3, num_inference_steps=8, diffusion_step_embed_dim=16, down_dims=(16, 32), kernel_size=3,
        n_groups=4, cond_predict_scale=False)
    return policy, cfg_for(policy_cfg, shape_meta, "fixture_image", horizon=8, n_obs_steps=3, n_action_steps=4), \
        shape_meta


def lowdim_case():
    model_cfg = {"_target_": "diffusion_policy.model.diffusion.conditional_unet1d.ConditionalUnet1D",
                 "input_dim": "${eval:'${action_dim} if ${obs_as_local_cond} or ${obs_as_global_cond} else "
                              "${obs_dim} + ${action_dim}'}",
                 "local_cond_dim": None, "global_cond_dim": "${eval:'${obs_dim}*${n_obs_steps}'}",
                 "diffusion_step_embed_dim": 16, "down_dims": [16, 32], "kernel_size": 5, "n_groups": 8,
                 "cond_predict_scale": True}
    policy_cfg = {"_target_": "diffusion_policy.policy.diffusion_unet_lowdim_policy.DiffusionUnetLowdimPolicy",
                  "model": model_cfg, "noise_scheduler": dict(DDIM, clip_sample=False),
                  "horizon": "${horizon}", "obs_dim": "${obs_dim}", "action_dim": "${action_dim}",
                  "n_action_steps": "${n_action_steps}", "n_obs_steps": "${n_obs_steps}", "num_inference_steps": 6,
                  "obs_as_local_cond": False, "obs_as_global_cond": True, "pred_action_steps_only": False,
                  "oa_step_convention": True}
    model = ConditionalUnet1D(input_dim=2, global_cond_dim=5 * 2, diffusion_step_embed_dim=16, down_dims=[16, 32],
                              kernel_size=5, n_groups=8, cond_predict_scale=True)
    policy = DiffusionUnetLowdimPolicy(model=model, noise_scheduler=scheduler(dict(DDIM, clip_sample=False)),
                                       horizon=16, obs_dim=5, action_dim=2, n_action_steps=8, n_obs_steps=2,
                                       num_inference_steps=6, obs_as_global_cond=True, oa_step_convention=True)
    cfg = cfg_for(policy_cfg, None, "fixture_lowdim", horizon=16, n_obs_steps=2, n_action_steps=8)
    cfg.obs_dim, cfg.action_dim = 5, 2
    return policy, cfg, None


def set_weights(policy, seed: int) -> None:
    state = policy.state_dict()
    manifest = {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                for k, v in state.items() if not k.startswith("normalizer.")}
    seeded = {k: torch.from_numpy(v) for k, v in seeded_state(manifest, seed).items()}
    missing, unexpected = policy.load_state_dict(seeded, strict=False)
    assert not unexpected, unexpected
    for name, buf in policy.named_buffers():  # robomimic's softmax temperature: positive, not 1
        if name.endswith("temperature"):
            buf.fill_(0.5)
    assert all(k.startswith("normalizer.") or k.rsplit(".", 1)[-1] in ("pos_x", "pos_y") for k in missing), missing


def fit_normalizer(policy, shape_meta, rng):
    norm = LinearNormalizer()
    if shape_meta is None:
        norm.fit({"obs": rng.uniform(-3, 3, (64, 5)), "action": rng.uniform(-1, 2, (64, 2))})
    else:
        data = {"action": rng.uniform(-1, 2, (64, shape_meta["action"]["shape"][0]))}
        for key, attr in shape_meta["obs"].items():
            if attr["type"] == "low_dim":
                data[key] = rng.uniform(-2, 2, (64, *attr["shape"]))
        norm.fit(data)
        for key, attr in shape_meta["obs"].items():
            if attr["type"] == "rgb":
                norm[key] = get_image_range_normalizer()
    policy.set_normalizer(norm)


def observations(shape_meta, t_o: int, rng) -> tuple[dict, dict]:
    """(raw inputs saved to io.npz, the reference's obs_dict)."""
    raw, obs = {}, {}
    meta = shape_meta["obs"] if shape_meta else {"obs": {"shape": [5], "type": "low_dim"}}
    for key, attr in meta.items():
        if attr["type"] == "rgb":
            raw[key] = rng.integers(0, 256, (N_SAMPLES, t_o, *attr["shape"]), dtype=np.uint8)
            obs[key] = torch.from_numpy(raw[key]).float() / 255.0
        else:
            raw[key] = rng.uniform(-2.5, 2.5, (N_SAMPLES, t_o, *attr["shape"])).astype(np.float32)
            obs[key] = torch.from_numpy(raw[key])
    return raw, obs


def predict(policy, obs: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    policy.eval()
    if isinstance(policy.noise_scheduler, DDPMScheduler):
        policy.noise_scheduler = DDIMScheduler.from_config(policy.noise_scheduler.config)
    shape = (N_SAMPLES, policy.horizon, policy.action_dim)
    torch.manual_seed(seed)
    noise = torch.randn(shape)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = policy.predict_action(obs if "obs" not in obs else {"obs": obs["obs"]})
    return noise.numpy(), out["action_pred"].numpy()


def seeded_tensors(payload: dict) -> dict[bytes, dict]:
    """The bytes of every seeded tensor of model and EMA model -> what it is (a stored zip
    entry is recognised by its content: the seeded values are unique)."""
    out = {}
    for part in ("model", "ema_model"):
        for name, value in _tensors(payload["state_dicts"][part]):
            if not name.startswith("normalizer.") and value.is_floating_point() and value.numel() > 1:
                out[value.contiguous().numpy().tobytes()] = {
                    "dict": part, "name": name, "shape": list(value.shape),
                    "dtype": str(value.dtype).replace("torch.", "")}
    return out


def _tensors(obj, prefix=""):
    if torch.is_tensor(obj):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}.{i}")


def make(name: str, build) -> None:
    rng = np.random.default_rng([SEED, sum(name.encode())])
    policy, cfg, shape_meta = build()
    set_weights(policy, SEED)
    fit_normalizer(policy, shape_meta, rng)
    ema = copy.deepcopy(policy)
    set_weights(ema, SEED + 1)  # a partial load_state_dict empties the reference's normalizer:
    ema.set_normalizer(policy.normalizer)  # set it again
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ws = BaseWorkspace(cfg, output_dir=str(out))
    ws.model, ws.ema_model = policy, ema
    ws.optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    ws.global_step, ws.epoch = 0, 0
    ws.include_keys = ("global_step", "epoch")
    ckpt = Path(ws.save_checkpoint(path=out / "latest.ckpt", use_thread=False))
    payload = {"state_dicts": {"model": policy.state_dict(), "ema_model": ema.state_dict(),
                               "optimizer": ws.optimizer.state_dict()}}
    storages = seeded_tensors(payload)
    if shape_meta and any(a["type"] == "rgb" for a in shape_meta["obs"].values()):
        strip(ckpt, storages)

    t_o = policy.n_obs_steps
    raw, obs = observations(shape_meta, t_o, rng)
    noise, expected_ema = predict(ema, obs, SEED)
    _, expected_model = predict(policy, obs, SEED)
    np.savez_compressed(out / "io.npz", noise=noise, expected=expected_ema.astype(np.float32),
                        expected_no_ema=expected_model.astype(np.float32), **raw)
    (out / "meta.json").write_text(json.dumps({
        "library": "diffusion_policy (real-stanford)", "diffusers": version("diffusers"),
        "robomimic": version("robomimic"), "torch": torch.__version__, "seed": SEED, "ema_seed": SEED + 1,
        "samples": N_SAMPLES}, indent=1) + "\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{name}: {size / 1e3:.0f} kB, expected range {expected_ema.min():.2f}..{expected_ema.max():.2f}")


def strip(ckpt: Path, seeded: dict) -> None:
    """Drop the seeded storages of model and EMA model from the zip; list them for the test."""
    cut = {}
    kept = ckpt.with_suffix(".tmp")
    with zipfile.ZipFile(ckpt) as src, zipfile.ZipFile(kept, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            parts = info.filename.split("/")
            if len(parts) == 3 and parts[1] == "data" and data in seeded:
                cut[parts[2]] = seeded[data]
                continue
            dst.writestr(info, data)
    kept.replace(ckpt)
    (ckpt.parent / "storages.json").write_text(json.dumps(cut, indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    for case_name, builder in (("hybrid_image", hybrid_case), ("image_avgpool", image_case),
                               ("lowdim", lowdim_case)):
        make(case_name, builder)
