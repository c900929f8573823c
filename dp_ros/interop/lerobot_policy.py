"""Import a LeRobot DiffusionPolicy (a ``save_pretrained`` directory) as a dp_ros checkpoint.

What maps to what (docs/interop.md has the table):

- ``observation.state`` -> ``joint_pos`` (the node reads it from /joint_states, so it
  must be the positions of the action joints), ``observation.environment_state`` ->
  ``environment_state``, ``observation.images.NAME`` (or ``observation.image``) -> camera
  ``NAME``; ``action`` -> the joint targets.
- Normalization: LeRobot 0.4 keeps its statistics in the processor files
  (``policy_preprocessor*.json`` and their safetensors), older releases inside
  ``model.safetensors`` (``normalize_inputs.buffer_*``). Every mode LeRobot applies
  (MIN_MAX, MEAN_STD, QUANTILES, QUANTILE10, IDENTITY) becomes an exact affine map
  with LeRobot's own epsilon, images per channel.
- Encoder: ResNet-18 (group norm or BatchNorm), spatial softmax, a linear layer and a
  ReLU; the evaluation crop is torchvision's center crop.
- U-Net: key renames; FiLM without scale becomes FiLM with scale fixed at exactly 1;
  the observation features are reordered from LeRobot's (state, cameras, environment)
  to ours (cameras, state, environment) by permuting the FiLM layers' input columns.
- Noise: the training schedule carries over; sampling is DDIM with the reference's
  "leading" timesteps and LeRobot's clipping. A DDPM-configured policy runs with DDIM
  (the same trained network; DDPM's sampler is stochastic per step).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dp_ros.core.normalizer import Affine, Normalizer
from dp_ros.interop.common import (
    InteropError, build_checked, film_bias_only, joint_names, permute_global_cond, refuse, rename,
)
from dp_ros.interop.names import ENV_FEATURE, ENV_KEY, IMAGES, JOINTS, SINGLE_IMAGE, STATE, lerobot_camera
from dp_ros.model.config import (
    CameraConfig, LowdimConfig, NoiseConfig, ObsConfig, PolicyConfig, UNetConfig, VisionConfig,
)

WEIGHTS = "model.safetensors"

# DiffusionConfig fields (LeRobot 0.2-0.4) and what this importer does with them.
ARCHITECTURE = {
    "n_obs_steps", "horizon", "n_action_steps", "normalization_mapping", "vision_backbone", "resize_shape",
    "crop_ratio", "crop_shape", "crop_is_random", "pretrained_backbone_weights", "use_group_norm",
    "spatial_softmax_num_keypoints", "use_separate_rgb_encoder_per_camera", "down_dims", "kernel_size",
    "n_groups", "diffusion_step_embed_dim", "use_film_scale_modulation", "noise_scheduler_type",
    "num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type", "clip_sample",
    "clip_sample_range", "num_inference_steps", "input_features", "output_features", "type",
}
IGNORED = {  # training, hub and device settings: no effect on the network's outputs
    "device", "use_amp", "use_peft", "push_to_hub", "repo_id", "private", "tags", "license", "pretrained_path",
    "drop_n_last_frames", "compile_model", "compile_mode", "do_mask_loss_for_padding", "optimizer_lr",
    "optimizer_betas", "optimizer_eps", "optimizer_weight_decay", "scheduler_name", "scheduler_warmup_steps",
    "input_shapes", "output_shapes", "input_normalization_modes", "output_normalization_modes",
}
EPS = 1e-8  # LeRobot's normalization epsilon (the processor files may say otherwise)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise InteropError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InteropError(f"{path} is not valid JSON: {exc}") from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise InteropError(f"{path} is missing")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated or corrupt files
        raise InteropError(f"{path} could not be read (corrupt or truncated?): {exc}") from None


class _Features:
    """LeRobot's feature names -> ours, in both orders the two libraries concatenate them."""

    def __init__(self, cfg: dict, where: str):
        inputs, outputs = cfg.get("input_features"), cfg.get("output_features")
        if not isinstance(inputs, dict) or not isinstance(outputs, dict):
            raise InteropError(f"{where}: input_features and output_features must be mappings "
                               "(a config.json from LeRobot 0.2 or later)")
        self.cameras: dict[str, tuple[int, int]] = {}  # LeRobot key -> (H, W), in LeRobot's order
        self.names: dict[str, str] = {}  # LeRobot key -> our key
        self.state_dim = self.env_dim = 0
        for key, ft in inputs.items():
            kind, shape = (ft or {}).get("type"), list((ft or {}).get("shape") or [])
            if kind == "VISUAL" and (key.startswith(IMAGES) or key == SINGLE_IMAGE):
                if len(shape) != 3 or shape[0] != 3:
                    raise refuse(where, f"input_features[{key!r}].shape", shape, "cameras must be 3 x H x W (RGB)")
                self.cameras[key] = (shape[1], shape[2])
                self.names[key] = lerobot_camera(key)
            elif kind == "STATE" and key == STATE and len(shape) == 1:
                self.state_dim, self.names[key] = shape[0], JOINTS
            elif kind == "ENV" and key == ENV_FEATURE and len(shape) == 1:
                self.env_dim, self.names[key] = shape[0], ENV_KEY
            else:
                raise refuse(where, f"input_features[{key!r}]", ft,
                             f"known features are {STATE} (STATE), {ENV_FEATURE} (ENV) and {IMAGES}NAME (VISUAL)")
        if not self.state_dim:
            raise InteropError(f"{where}: the policy has no {STATE}; LeRobot's diffusion policy requires it")
        if set(outputs) != {"action"} or (outputs["action"] or {}).get("type") != "ACTION":
            raise refuse(where, "output_features", outputs, "a diffusion policy outputs one 'action' feature")
        self.action_dim = int(list(outputs["action"].get("shape") or [0])[0])
        if len(set(self.names.values())) != len(self.names):
            raise InteropError(f"{where}: camera names collide after conversion: {self.names}")

    def lerobot_layout(self, feature_dim: int) -> list[tuple[str, int]]:
        """One observation step as LeRobot concatenates it: state, cameras, environment."""
        out = [(STATE, self.state_dim)] + [(k, feature_dim) for k in self.cameras]
        return out + ([(ENV_FEATURE, self.env_dim)] if self.env_dim else [])

    def our_layout(self, feature_dim: int) -> list[tuple[str, int]]:
        out = [(k, feature_dim) for k in self.cameras] + [(STATE, self.state_dim)]
        return out + ([(ENV_FEATURE, self.env_dim)] if self.env_dim else [])


def _permutation(theirs: list[tuple[str, int]], ours: list[tuple[str, int]]) -> np.ndarray:
    start, pos = {}, 0
    for key, dim in theirs:
        start[key] = pos
        pos += dim
    return np.concatenate([start[key] + np.arange(dim) for key, dim in ours])


def _affine(mode: str, stats: dict[str, np.ndarray], eps: float, inverse_only: bool, old_format: bool,
            where: str) -> Affine | None:
    """LeRobot's normalization of one feature as y = x * scale + offset (None: identity)."""
    def need(*names):
        missing = [n for n in names if n not in stats]
        if missing:
            raise InteropError(f"{where}: normalization {mode} needs statistics {list(names)}; missing {missing}")
        return [np.asarray(stats[n], np.float64).reshape(-1) for n in names]

    if mode == "IDENTITY":
        return None
    if mode == "MEAN_STD":
        mean, std = need("mean", "std")
        # LeRobot normalizes with (x - mean) / (std + eps) and unnormalizes with y * std + mean.
        denom = std if inverse_only and np.all(std > 0) else std + eps
        return Affine(1.0 / denom, -mean / denom)
    bounds = {"MIN_MAX": ("min", "max"), "QUANTILES": ("q01", "q99"), "QUANTILE10": ("q10", "q90")}
    if mode not in bounds:
        raise refuse(where, "normalization mode", mode, f"known modes are IDENTITY, MEAN_STD and {sorted(bounds)}")
    lo, hi = need(*bounds[mode])
    if old_format:  # LeRobot < 0.4: (x - min) / (max - min + eps) * 2 - 1; unnormalize without eps
        denom = hi - lo if inverse_only and np.all(hi > lo) else hi - lo + eps
    else:  # 0.4: eps replaces a zero range
        denom = np.where(hi - lo == 0, eps, hi - lo)
    return Affine(2.0 / denom, -2.0 * lo / denom - 1.0)


def _processor_stats(src: Path, name: str, step: str) -> tuple[dict[str, dict[str, np.ndarray]], float] | None:
    """Statistics and epsilon of the (un)normalizer step in ``<name>.json`` (LeRobot 0.4)."""
    path = src / f"{name}.json"
    if not path.is_file():
        return None
    data = _read_json(path)
    for entry in data.get("steps", []) if isinstance(data, dict) else []:
        if entry.get("registry_name") == step:
            state_file = entry.get("state_file")
            eps = float((entry.get("config") or {}).get("eps", EPS))
            if not state_file:
                raise InteropError(f"{path}: the {step} step has no state_file with its statistics")
            flat = _load_safetensors(src / state_file)
            stats: dict[str, dict[str, np.ndarray]] = {}
            for key, value in flat.items():
                feature, _, stat = key.rpartition(".")
                stats.setdefault(feature, {})[stat] = value.double().numpy()
            return stats, eps
    raise InteropError(f"{path} has no {step} step")


def _old_format_stats(weights: dict[str, torch.Tensor]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """LeRobot < 0.4: ``normalize_inputs.buffer_observation_state.min`` and the like."""
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for key, value in weights.items():
        module, _, rest = key.partition(".")
        if module in ("normalize_inputs", "normalize_targets", "unnormalize_outputs") and rest.startswith("buffer_"):
            buffer, _, stat = rest[len("buffer_"):].rpartition(".")
            out.setdefault(module, {}).setdefault(buffer, {})[stat] = value.double().numpy()
    return out


def _old_key(feature: str) -> str:
    return feature.replace(".", "_")


def import_lerobot(src: str | Path, fps: float, joint_names_arg: str | None = None):
    """Convert; returns (policy, metadata, report lines). Writes nothing."""
    src = Path(src)
    if not src.is_dir():
        raise InteropError(f"{src} is not a directory (a LeRobot policy saved with save_pretrained)")
    where = str(src / "config.json")
    cfg = _read_json(src / "config.json")
    if not isinstance(cfg, dict):
        raise InteropError(f"{where} must hold a JSON object")
    if cfg.get("type", "diffusion") != "diffusion":
        raise refuse(where, "type", cfg.get("type"), "only LeRobot's diffusion policy can be imported")
    unknown = sorted(set(cfg) - ARCHITECTURE - IGNORED)
    if unknown:
        raise InteropError(f"{where}: unknown fields {unknown} (this importer knows LeRobot 0.2-0.4's "
                           "DiffusionConfig; a field it does not know could change the outputs)")
    _check_supported(cfg, where)
    if not (np.isfinite(fps) and fps > 0):
        raise InteropError(f"--fps {fps} must be a positive number (the dataset's frame rate)")
    feats = _Features(cfg, where)
    weights = _load_safetensors(src / WEIGHTS)

    # ---- normalization ----
    mapping = cfg.get("normalization_mapping") or {}
    kinds = {STATE: "STATE", ENV_FEATURE: "ENV", "action": "ACTION", **{k: "VISUAL" for k in feats.cameras}}
    pre = _processor_stats(src, "policy_preprocessor", "normalizer_processor")
    post = _processor_stats(src, "policy_postprocessor", "unnormalizer_processor")
    old = _old_format_stats(weights)
    if pre is not None and post is not None:
        stats_in, eps_in = pre
        stats_out, eps_out = post
        old_format = False
    elif old:
        stats_in = {f: old.get("normalize_inputs", {}).get(_old_key(f), {}) for f in kinds if f != "action"}
        stats_out = {"action": old.get("unnormalize_outputs", {}).get(_old_key("action"), {})}
        eps_in = eps_out = EPS
        old_format = True
    else:
        raise InteropError(f"{src}: no normalization statistics: neither policy_preprocessor.json and "
                           f"policy_postprocessor.json (LeRobot 0.4) nor normalize_inputs buffers in {WEIGHTS}")
    normalizer_stats: dict[str, Affine] = {}
    for feature, kind in kinds.items():
        if feature not in feats.names and feature != "action":
            continue
        mode = mapping.get(kind, "IDENTITY")
        table, eps = (stats_out, eps_out) if feature == "action" else (stats_in, eps_in)
        aff = _affine(mode, table.get(feature, {}), eps, inverse_only=feature == "action",
                      old_format=old_format, where=f"{src} statistics for {feature}")
        dim = 3 if kind == "VISUAL" else (feats.action_dim if feature == "action" else
                                          feats.state_dim if feature == STATE else feats.env_dim)
        if aff is None:
            if kind == "VISUAL":
                continue
            aff = Affine(np.ones(dim), np.zeros(dim))
        if aff.dim != dim:
            raise InteropError(f"{src}: statistics for {feature} have {aff.dim} values; the feature has {dim}")
        key = "action" if feature == "action" else feats.names[feature]
        normalizer_stats[key] = aff
    normalizer = Normalizer(normalizer_stats)

    # ---- configuration ----
    names, placeholders = joint_names(joint_names_arg, feats.action_dim, where)
    kp = int(cfg.get("spatial_softmax_num_keypoints", 32))
    crop = cfg.get("crop_shape")
    cameras = tuple(CameraConfig(feats.names[k], h, w, *(crop if crop else (h, w)))
                    for k, (h, w) in feats.cameras.items())
    lowdim = (LowdimConfig(JOINTS, feats.state_dim),) + ((LowdimConfig(ENV_KEY, feats.env_dim),)
                                                         if feats.env_dim else ())
    n_train = int(cfg.get("num_train_timesteps", 100))
    steps = int(cfg.get("num_inference_steps") or n_train)
    policy_cfg = PolicyConfig(
        joint_names=names, dt=1.0 / fps, obs=ObsConfig(cameras=cameras, lowdim=lowdim),
        n_obs_steps=int(cfg["n_obs_steps"]), horizon=int(cfg["horizon"]), n_action_steps=int(cfg["n_action_steps"]),
        vision=VisionConfig(num_keypoints=kp, feature_dim=2 * kp,
                            shared=not cfg.get("use_separate_rgb_encoder_per_camera", False),
                            norm="group" if cfg.get("use_group_norm", True) else "batch",
                            feature_activation="relu", crop_center="round"),
        unet=UNetConfig(down_dims=tuple(int(d) for d in cfg["down_dims"]), kernel_size=int(cfg["kernel_size"]),
                        n_groups=int(cfg["n_groups"]), step_embed_dim=int(cfg["diffusion_step_embed_dim"]),
                        final_n_groups=8),
        noise=NoiseConfig(num_train_steps=n_train, num_inference_steps=steps,
                          prediction_type=cfg.get("prediction_type", "epsilon"), timestep_spacing="leading",
                          clip_sample=bool(cfg.get("clip_sample", True)),
                          clip_sample_range=float(cfg.get("clip_sample_range", 1.0))),
        # LeRobot's recordings file the action sent at t, reached about one period later.
        action_time_offset=1.0 / fps,
    )

    # ---- weights ----
    state = {k: v for k, v in weights.items()
             if not k.startswith(("normalize_inputs.", "normalize_targets.", "unnormalize_outputs."))
             and not k.endswith(".pool.pos_grid")}
    rules = [(r"^diffusion\.unet\.", "denoiser."), (r"^(denoiser\..*)\.conv1\.", r"\1.blocks.0."),
             (r"^(denoiser\..*)\.conv2\.", r"\1.blocks.1."),
             (r"\.pool\.nets\.", ".pool.keypoints."), (r"\.out\.(weight|bias)$", r".proj.\1")]
    if policy_cfg.vision.shared:
        rules.append((r"^diffusion\.rgb_encoder\.", "obs_encoder.cameras.encoders.shared."))
    else:
        for i, key in enumerate(feats.cameras):
            rules.append((rf"^diffusion\.rgb_encoder\.{i}\.", f"obs_encoder.cameras.encoders.{feats.names[key]}."))
    state = rename(state, rules)
    if not cfg.get("use_film_scale_modulation", True):
        state = film_bias_only(state)
    perm = _permutation(feats.lerobot_layout(2 * kp), feats.our_layout(2 * kp))
    state = permute_global_cond(state, policy_cfg.unet.step_embed_dim, policy_cfg.n_obs_steps, perm)
    policy = build_checked(policy_cfg, normalizer, state, str(src))

    observation_map = {k: feats.names[k] for k in feats.names}
    metadata = {
        "imported_from": {"library": "lerobot", "path": str(src.resolve()),
                          "statistics": "model.safetensors (LeRobot < 0.4)" if old_format else "processor files",
                          "noise_scheduler_type": cfg.get("noise_scheduler_type", "DDPM")},
        "observation_map": observation_map,
        "placeholder_joint_names": placeholders,
    }
    report = _report(policy_cfg, observation_map, placeholders, cfg)
    return policy, metadata, report


def _check_supported(cfg: dict, where: str) -> None:
    checks = [
        ("vision_backbone", "resnet18", "dp_ros's image encoder is ResNet-18"),
        ("resize_shape", None, "the policy would resize images in the model; resize them before the node instead "
                               "and import a policy trained without resize_shape"),
        ("beta_schedule", "squaredcos_cap_v2", "dp_ros trains and samples with the squared-cosine schedule"),
    ]
    for field, want, why in checks:
        if cfg.get(field, want) != want:
            raise refuse(where, field, cfg.get(field), why)
    if float(cfg.get("crop_ratio", 1.0)) != 1.0:
        raise refuse(where, "crop_ratio", cfg.get("crop_ratio"), "give the crop as crop_shape instead")
    if cfg.get("noise_scheduler_type", "DDPM") not in ("DDPM", "DDIM"):
        raise refuse(where, "noise_scheduler_type", cfg.get("noise_scheduler_type"), "known: DDPM, DDIM")
    if cfg.get("prediction_type", "epsilon") not in ("epsilon", "sample"):
        raise refuse(where, "prediction_type", cfg.get("prediction_type"), "known: epsilon, sample")
    for field in ("n_obs_steps", "horizon", "n_action_steps", "down_dims", "kernel_size", "n_groups",
                  "diffusion_step_embed_dim"):
        if field not in cfg:
            raise InteropError(f"{where}: {field} is missing")


def _report(cfg: PolicyConfig, observation_map: dict[str, str], placeholders: bool, raw: dict) -> list[str]:
    lines = ["observations (LeRobot -> dp_ros, and where the node reads them):"]
    for theirs, ours in observation_map.items():
        if ours == JOINTS:
            where = f"/joint_states, the positions of the action joints ({cfg.action_dim})"
        elif ours == ENV_KEY:
            where = f"parameter states.{ENV_KEY}.topic (geometry_msgs/PoseArray)"
        else:
            cam = next(c for c in cfg.obs.cameras if c.name == ours)
            where = f"parameter cameras.{ours}.topic, {cam.width}x{cam.height} RGB"
        lines.append(f"  {theirs} -> {ours}: {where}")
    lines.append(f"actions: {cfg.action_dim} joint targets for {list(cfg.joint_names)}")
    if placeholders:
        lines.append("  placeholder joint names: the node refuses to move until they match your arm; "
                     "rerun with --joint-names in the order of LeRobot's action vector")
    lines.append(f"dt {cfg.dt:.4g} s, T_o {cfg.n_obs_steps}, T_p {cfg.horizon}, T_a {cfg.n_action_steps}, "
                 f"{cfg.noise.num_inference_steps} DDIM steps ({raw.get('noise_scheduler_type', 'DDPM')}-trained)")
    lines.append(f"timing: LeRobot records the action sent at t next to the observation of t; dp_ros schedules "
                 f"each action at the time it should be reached (docs/timing.md), so the checkpoint sets the "
                 f"node's action_time_offset to {cfg.action_time_offset:.4g} s (docs/interop.md)")
    return lines
