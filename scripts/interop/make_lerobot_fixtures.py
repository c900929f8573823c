"""Regenerate the LeRobot parity fixtures (test/fixtures/interop/lerobot/) with LeRobot itself.

Runs in a separate environment with lerobot installed (docs/interop.md says how), never
in the project's: the expected outputs must come from the real library.

    /path/to/lerobot-venv/bin/python scripts/interop/make_lerobot_fixtures.py      # lerobot 0.4.x
    /path/to/lerobot03-venv/bin/python scripts/interop/make_lerobot_fixtures.py    # lerobot 0.3.x: old_format
    /path/to/lerobot-venv/bin/python scripts/interop/make_lerobot_fixtures.py state_quantiles   # one case

LeRobot before 0.4 kept the normalization statistics inside model.safetensors
(``normalize_inputs.buffer_*``); run under such a release, the script writes only the
``old_format`` case, whose fixture keeps those buffers in ``stats.safetensors`` (the
test merges them into the rebuilt weights file).

Each case is a small LeRobot DiffusionPolicy saved with ``save_pretrained`` together
with its pre- and post-processors (LeRobot 0.4's layout: normalization statistics in
the processor files), plus ``io.npz``: observation windows, initial noise and the full
T_p-step chunk LeRobot computes from them (its own normalization, encoder, U-Net,
scheduler and unnormalization). Weights are seeded stand-ins (test/interop_weights.py);
for image policies the 44 MB ResNet-18 weights are not committed: the fixture keeps the
weight manifest LeRobot wrote and the test rebuilds the file from the same seed.
A DDPM-configured policy is sampled with diffusers' DDIMScheduler built from the same
training schedule, because dp_ros samples with deterministic DDIM (a DDPM sampler
draws fresh noise every step, so no two implementations can agree on its output).
"""
from __future__ import annotations

import json
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test"))
from interop_weights import seeded_state  # noqa: E402

from diffusers import DDIMScheduler  # noqa: E402
from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature  # noqa: E402
from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig  # noqa: E402
from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy  # noqa: E402

OLD = tuple(int(x) for x in version("lerobot").split(".")[:2]) < (0, 4)
if not OLD:
    from lerobot.policies.factory import make_pre_post_processors  # noqa: E402

OUT = ROOT / "test" / "fixtures" / "interop" / "lerobot"
N_SAMPLES = 2
SEED = 1234


def feature(kind: str, shape) -> PolicyFeature:
    return PolicyFeature(type=getattr(FeatureType, kind), shape=tuple(shape))


CASES = {
    # Two cameras through one shared encoder, torchvision's crop at an odd margin (43 -> 40),
    # group norm, FiLM scale, DDIM, epsilon, the default normalization (state/action min-max,
    # images mean/std).
    "image_shared_ddim": dict(
        inputs={"observation.state": feature("STATE", [4]),
                "observation.images.front": feature("VISUAL", [3, 43, 64]),
                "observation.images.wrist": feature("VISUAL", [3, 43, 64])},
        action_dim=4,
        config=dict(n_obs_steps=2, horizon=16, n_action_steps=8, crop_shape=(40, 56), down_dims=(16, 32, 64),
                    diffusion_step_embed_dim=32, spatial_softmax_num_keypoints=16, noise_scheduler_type="DDIM",
                    num_inference_steps=10)),
    # One encoder per camera, BatchNorm (no group norm), no crop, FiLM bias only, DDPM-trained,
    # sample prediction without clipping, other kernel/groups, mean/std everywhere.
    "image_separate_bn_ddpm_sample": dict(
        inputs={"observation.state": feature("STATE", [3]),
                "observation.images.top": feature("VISUAL", [3, 32, 40]),
                "observation.images.side": feature("VISUAL", [3, 32, 40])},
        action_dim=3,
        config=dict(n_obs_steps=3, horizon=8, n_action_steps=4, crop_shape=None, use_group_norm=False,
                    use_separate_rgb_encoder_per_camera=True, use_film_scale_modulation=False,
                    down_dims=(16, 32), kernel_size=3, n_groups=4, diffusion_step_embed_dim=16,
                    spatial_softmax_num_keypoints=8, noise_scheduler_type="DDPM", prediction_type="sample",
                    clip_sample=False, num_inference_steps=8,
                    normalization_mapping={"VISUAL": NormalizationMode.MEAN_STD,
                                           "STATE": NormalizationMode.MEAN_STD,
                                           "ACTION": NormalizationMode.MEAN_STD})),
    # State and environment state, no camera: the weights file itself is committed.
    "state_only": dict(
        inputs={"observation.state": feature("STATE", [2]),
                "observation.environment_state": feature("ENV", [6])},
        action_dim=2,
        config=dict(n_obs_steps=2, horizon=16, n_action_steps=8, down_dims=(16, 32), diffusion_step_embed_dim=16,
                    noise_scheduler_type="DDIM", num_inference_steps=5, clip_sample_range=1.5)),
    # LeRobot 0.4's quantile modes: state by its 1st/99th percentiles, action by its 10th/90th,
    # environment state not in the mapping (IDENTITY).
    "state_quantiles": dict(
        inputs={"observation.state": feature("STATE", [3]),
                "observation.environment_state": feature("ENV", [4])},
        action_dim=3, quantiles=True,
        config=dict(n_obs_steps=2, horizon=8, n_action_steps=4, down_dims=(16, 32), diffusion_step_embed_dim=16,
                    noise_scheduler_type="DDIM", num_inference_steps=6,
                    normalization_mapping={"VISUAL": NormalizationMode.MEAN_STD,
                                           "STATE": NormalizationMode.QUANTILES,
                                           "ACTION": NormalizationMode.QUANTILE10})),
}
OLD_CASES = {
    # LeRobot < 0.4 (statistics in the weights file), a pusht-style single image key.
    "old_format": dict(
        inputs={"observation.state": feature("STATE", [2]),
                "observation.image": feature("VISUAL", [3, 48, 48])},
        action_dim=2,
        config=dict(n_obs_steps=2, horizon=16, n_action_steps=8, crop_shape=(40, 40), down_dims=(16, 32),
                    diffusion_step_embed_dim=16, spatial_softmax_num_keypoints=8, noise_scheduler_type="DDIM",
                    num_inference_steps=10)),
}


def stats_for(features: dict, action_dim: int, rng, quantiles: bool = False) -> dict:
    stats = {}
    for key, ft in {**features, "action": feature("ACTION", [action_dim])}.items():
        if ft.type == FeatureType.VISUAL:
            shape = (3, 1, 1)
            stats[key] = {"mean": rng.uniform(0.3, 0.6, shape), "std": rng.uniform(0.15, 0.3, shape),
                          "min": np.zeros(shape), "max": np.ones(shape)}
        else:
            lo = rng.uniform(-2.0, -0.5, ft.shape)
            hi = lo + rng.uniform(0.5, 3.0, ft.shape)
            if key == "observation.environment_state":
                hi[0] = lo[0]  # a constant dimension: LeRobot's min-max substitutes eps for the range
            stats[key] = {"min": lo, "max": hi, "mean": (lo + hi) / 2, "std": (hi - lo) / 4}
            if quantiles:  # inside [min, max], not symmetric
                for q, f in (("q01", 0.02), ("q10", 0.15), ("q50", 0.55), ("q90", 0.8), ("q99", 0.97)):
                    stats[key][q] = lo + f * (hi - lo)
    return {k: {s: torch.tensor(v, dtype=torch.float32) for s, v in d.items()} for k, d in stats.items()}


def make_case(name: str, spec: dict) -> None:
    rng = np.random.default_rng([SEED, sum(name.encode())])
    cfg = DiffusionConfig(input_features=spec["inputs"],
                          output_features={"action": feature("ACTION", [spec["action_dim"]])},
                          device="cpu", **spec["config"])
    policy = DiffusionPolicy(cfg).eval()
    # Seeded weights for every tensor LeRobot saves (pos_grid stays LeRobot's own).
    manifest = {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                for k, v in policy.state_dict().items()}
    state = {k: torch.from_numpy(v) for k, v in seeded_state(manifest, SEED).items()}
    missing, unexpected = policy.load_state_dict(state, strict=False)
    assert not unexpected and all(m.endswith("pos_grid") for m in missing), (missing, unexpected)
    stats = stats_for(spec["inputs"], spec["action_dim"], rng, spec.get("quantiles", False))
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    policy_dir = out / "policy"
    if OLD:  # the statistics live in the policy's own buffers
        policy = DiffusionPolicy(cfg, dataset_stats=stats).eval()
        missing, unexpected = policy.load_state_dict(state, strict=False)
        assert not unexpected, unexpected
        policy.save_pretrained(policy_dir)
    else:
        pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
        policy.save_pretrained(policy_dir)
        pre.save_pretrained(policy_dir)
        post.save_pretrained(policy_dir)
    with safe_open(str(policy_dir / "model.safetensors"), "pt") as f:
        saved = {k: {"shape": list(f.get_slice(k).get_shape()), "dtype": f.get_slice(k).get_dtype()}
                 for k in f.keys()}
    images = [k for k, ft in spec["inputs"].items() if ft.type == FeatureType.VISUAL]
    if images:  # too large to commit: keep the manifest, the test rebuilds the file
        if OLD:
            with safe_open(str(policy_dir / "model.safetensors"), "pt") as f:
                save_file({k: f.get_tensor(k) for k in f.keys() if "normalize" in k.split(".")[0]},
                          str(out / "stats.safetensors"))
        (policy_dir / "model.safetensors").unlink()
        (out / "weights_manifest.json").write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")

    # Inputs: raw observations as LeRobot takes them (images float in [0, 1] from uint8).
    t_o, t_p, a = cfg.n_obs_steps, cfg.horizon, spec["action_dim"]
    io = {}
    batch = {}
    for key, ft in spec["inputs"].items():
        if ft.type == FeatureType.VISUAL:
            raw = rng.integers(0, 256, (N_SAMPLES, t_o, *ft.shape), dtype=np.uint8)  # (N, T_o, 3, H, W)
            io[key] = raw
            batch[key] = torch.from_numpy(raw).float() / 255.0
        else:
            s = stats[key]
            raw = rng.uniform(s["min"].numpy() - 0.2, s["max"].numpy() + 0.2, (N_SAMPLES, t_o, *ft.shape))
            io[key] = raw.astype(np.float32)
            batch[key] = torch.from_numpy(io[key])
    if OLD:  # no noise argument before 0.4: LeRobot draws it first from the generator it is given
        noise = torch.randn((N_SAMPLES, t_p, a), generator=torch.Generator().manual_seed(SEED))
    else:
        noise = torch.from_numpy(rng.standard_normal((N_SAMPLES, t_p, a)).astype(np.float32))
    io["noise"] = noise.numpy()

    if OLD:
        normalize = policy.normalize_inputs
        unnormalize = (lambda a: policy.unnormalize_outputs({"action": a})["action"])
    else:
        normalizer = next(s for s in pre.steps if type(s).__name__ == "NormalizerProcessorStep")
        unnormalizer = next(s for s in post.steps if type(s).__name__ == "UnnormalizerProcessorStep")
        normalize = lambda b: normalizer._normalize_observation(b, inverse=False)  # noqa: E731
        unnormalize = lambda a: unnormalizer._normalize_action(a, inverse=True)  # noqa: E731
    with torch.no_grad():
        nbatch = normalize(dict(batch))
        if images:
            nbatch["observation.images"] = torch.stack([nbatch[k] for k in images], dim=-4)  # b s n c h w
        model = policy.diffusion
        if cfg.noise_scheduler_type == "DDPM":
            model.noise_scheduler = DDIMScheduler.from_config(model.noise_scheduler.config)
        global_cond = model._prepare_global_conditioning(nbatch)
        if OLD:
            chunk = model.conditional_sample(N_SAMPLES, global_cond=global_cond,
                                             generator=torch.Generator().manual_seed(SEED))
            sliced = model.generate_actions(nbatch)  # draws from the global generator: not compared
        else:
            chunk = model.conditional_sample(N_SAMPLES, global_cond=global_cond, noise=noise)
            # What LeRobot's own select path returns: the executed slice (a check of our reading).
            sliced = model.generate_actions(nbatch, noise=noise)
            start = t_o - 1
            assert torch.allclose(sliced, chunk[:, start:start + cfg.n_action_steps])
        expected = unnormalize(chunk)
    io["expected"] = expected.numpy().astype(np.float32)
    np.savez_compressed(out / "io.npz", **io)
    (out / "meta.json").write_text(json.dumps({
        "library": "lerobot", "lerobot": version("lerobot"), "diffusers": version("diffusers"),
        "torch": torch.__version__, "seed": SEED, "samples": N_SAMPLES,
        "weights": "manifest" if images else "file",
        "sampler": "DDIMScheduler.from_config(DDPM config)" if cfg.noise_scheduler_type == "DDPM" else "DDIM",
    }, indent=1) + "\n")
    print(f"{name}: {sum(p.stat().st_size for p in out.rglob('*') if p.is_file()) / 1e3:.0f} kB, "
          f"expected range {float(expected.min()):.2f}..{float(expected.max()):.2f}")


if __name__ == "__main__":
    only = sys.argv[1:]  # case names to regenerate (default: all of this LeRobot release's)
    for case_name, case in (OLD_CASES if OLD else CASES).items():
        if not only or case_name in only:
            make_case(case_name, case)
