"""Import a reference Diffusion Policy workspace checkpoint (real-stanford/diffusion_policy,
``latest.ckpt``) as a dp_ros checkpoint.

The .ckpt is a dill pickle. It is read with ``safe_pickle`` (tensors rebuilt, every other
object kept as inert data, nothing from the file imported or run), and its Hydra/OmegaConf
config is read as a tree of values: ``_target_`` names are compared as strings, never
instantiated, and ``${a.b}`` interpolations are looked up in the same tree (``${eval:...}``
only for integer arithmetic). The EMA weights are taken when the checkpoint has them.

Supported: the U-Net policies with observations as global conditioning:
``DiffusionUnetHybridImagePolicy`` (robomimic's ResNet-18, spatial softmax, linear
projection), ``DiffusionUnetImagePolicy`` (torchvision ResNet-18 with average pooling,
optional ImageNet normalization) and ``DiffusionUnetLowdimPolicy``. Images: the
reference feeds the ResNet its image normalizer's output (usually [0, 1] -> [-1, 1]),
kept here as a per-channel affine map; its evaluation crop is torchvision's center crop.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dp_ros.core.normalizer import Affine, Normalizer
from dp_ros.interop.common import (
    InteropError, build_checked, film_bias_only, joint_names, permute_global_cond, refuse, rename,
)
from dp_ros.interop.names import sanitize_name
from dp_ros.interop.safe_pickle import Opaque, PickleError, load_restricted
from dp_ros.model.config import (
    CameraConfig, LowdimConfig, NoiseConfig, ObsConfig, PolicyConfig, UNetConfig, VisionConfig,
)

PREFIX = "diffusion_policy.policy."
HYBRID = PREFIX + "diffusion_unet_hybrid_image_policy.DiffusionUnetHybridImagePolicy"
IMAGE = PREFIX + "diffusion_unet_image_policy.DiffusionUnetImagePolicy"
LOWDIM = PREFIX + "diffusion_unet_lowdim_policy.DiffusionUnetLowdimPolicy"
SCHEDULERS = {"diffusers.schedulers.scheduling_ddim.DDIMScheduler": "DDIM",
              "diffusers.schedulers.scheduling_ddpm.DDPMScheduler": "DDPM",
              "diffusers.DDIMScheduler": "DDIM", "diffusers.DDPMScheduler": "DDPM"}
JOINTS = "joint_pos"
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
# The U-Net's defaults where the config leaves a field out: the policies' and ConditionalUnet1D's.
UNET_DEFAULTS = {HYBRID: dict(diffusion_step_embed_dim=256, down_dims=[256, 512, 1024], kernel_size=5, n_groups=8,
                              cond_predict_scale=True),
                 IMAGE: dict(diffusion_step_embed_dim=256, down_dims=[256, 512, 1024], kernel_size=5, n_groups=8,
                             cond_predict_scale=True),
                 LOWDIM: dict(diffusion_step_embed_dim=256, down_dims=[256, 512, 1024], kernel_size=3, n_groups=8,
                              cond_predict_scale=False)}
TORCHVISION_RESNET = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}


# ---- the config as data ----

def plain(node: Any) -> Any:
    """An unpickled OmegaConf tree (``Opaque`` records) -> dicts, lists and values."""
    if isinstance(node, Opaque):
        state = node.state if isinstance(node.state, dict) else {}
        if node.name == "DictConfig":
            content = state.get("_content")
            return {k: plain(v) for k, v in content.items()} if isinstance(content, dict) else content
        if node.name == "ListConfig":
            content = state.get("_content")
            return [plain(v) for v in content] if isinstance(content, list) else content
        if "_val" in state:  # AnyNode, StringNode, IntegerNode, ...
            return plain(state["_val"])
        raise InteropError(f"the checkpoint's config holds a {node.qualname} this importer cannot read")
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [plain(v) for v in node]
    return node


_INTERP = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


class Config:
    """Lookups in the config tree with ``${...}`` interpolations resolved."""

    def __init__(self, root: dict, where: str):
        self.root, self.where = root, where

    def resolve(self, value: Any, path: str, depth: int = 0) -> Any:
        if depth > 20:
            raise InteropError(f"{self.where}: {path}: interpolation loop")
        if isinstance(value, str) and "${" in value:
            whole = _INTERP.fullmatch(value)
            if whole:
                return self.resolve(self._lookup(whole.group(1), path), path, depth + 1)
            if value.startswith("${eval:") and value.endswith("}"):
                expr = value[len("${eval:"):-1].strip().strip("'\"")
                expr = _INTERP.sub(lambda m: repr(self.resolve(self._lookup(m.group(1), path), path, depth + 1)),
                                   expr)
                return _arithmetic(expr, f"{self.where}: {path}")
            raise InteropError(f"{self.where}: {path} = {value!r}: interpolation form not supported")
        if isinstance(value, dict):
            return {k: self.resolve(v, f"{path}.{k}", depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
        return value

    def _lookup(self, dotted: str, path: str) -> Any:
        node: Any = self.root
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise InteropError(f"{self.where}: {path} refers to ${{{dotted}}}, which the config does not have")
            node = node[part]
        return node

    def get(self, section: dict, key: str, path: str, default: Any = ...) -> Any:
        if key not in section:
            if default is ...:
                raise InteropError(f"{self.where}: {path}.{key} is missing")
            return default
        return self.resolve(section[key], f"{path}.{key}")


def _arithmetic(expr: str, where: str) -> int:
    """Integer + - * of literals only (the reference writes n_action_steps as
    ``${eval:'${n_action_steps}+${n_latency_steps}'}``)."""
    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, int) and not isinstance(n.value, bool):
            return n.value
        if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub, ast.Mult)):
            a, b = ev(n.left), ev(n.right)
            return a + b if isinstance(n.op, ast.Add) else a - b if isinstance(n.op, ast.Sub) else a * b
        raise InteropError(f"{where}: eval expression {expr!r} is not integer arithmetic")
    try:
        return ev(ast.parse(expr, mode="eval"))
    except SyntaxError:
        raise InteropError(f"{where}: eval expression {expr!r} is not integer arithmetic") from None


# ---- the import ----

def import_reference(ckpt: str | Path, fps: float, joint_names_arg: str | None = None, ema: bool = True):
    """Convert; returns (policy, metadata, report lines). Writes nothing."""
    ckpt = Path(ckpt)
    where = str(ckpt)
    try:
        payload = load_restricted(ckpt)
    except PickleError as exc:
        raise InteropError(str(exc)) from None
    if not isinstance(payload, dict) or "cfg" not in payload or not isinstance(payload.get("state_dicts"), dict):
        raise InteropError(f"{where} is not a diffusion_policy workspace checkpoint (no cfg and state_dicts)")
    if not (np.isfinite(fps) and fps > 0):
        raise InteropError(f"--fps {fps} must be a positive number (the dataset's frame rate)")
    root = plain(payload["cfg"])
    if not isinstance(root, dict) or not isinstance(root.get("policy"), dict):
        raise InteropError(f"{where}: the config has no policy section")
    c = Config(root, where)
    pol = root["policy"]
    target = c.get(pol, "_target_", "policy")
    if target not in UNET_DEFAULTS:
        raise refuse(where, "policy._target_", target,
                     "supported: DiffusionUnetHybridImagePolicy, DiffusionUnetImagePolicy, DiffusionUnetLowdimPolicy")
    states = payload["state_dicts"]
    which = "ema_model" if ema and isinstance(states.get("ema_model"), dict) else "model"
    if not isinstance(states.get(which), dict):
        raise InteropError(f"{where} has no model weights (state_dicts.{which})")
    sd = {k: v for k, v in states[which].items() if torch.is_tensor(v)}

    horizon = int(c.get(pol, "horizon", "policy"))
    t_o = int(c.get(pol, "n_obs_steps", "policy"))
    t_a = int(c.get(pol, "n_action_steps", "policy"))
    if not c.get(pol, "obs_as_global_cond", "policy", target != LOWDIM):
        raise refuse(where, "policy.obs_as_global_cond", False,
                     "only policies conditioned on the observation (global conditioning) can be imported")
    for field in ("obs_as_local_cond", "pred_action_steps_only"):
        if c.get(pol, field, "policy", False):
            raise refuse(where, f"policy.{field}", True, "only global conditioning over all T_p actions")
    unet_section = pol.get("model") if target == LOWDIM else pol
    if not isinstance(unet_section, dict):
        raise InteropError(f"{where}: policy.model (the U-Net) is missing")
    upath = "policy.model" if target == LOWDIM else "policy"
    u = {k: c.get(unet_section, k, upath, d) for k, d in UNET_DEFAULTS[target].items()}
    noise = _noise(c, pol, where)

    norm = _normalizer_params(sd, where)
    if "action" not in norm:
        raise InteropError(f"{where}: the weights have no action normalizer (normalizer.params_dict.action)")
    action_dim = int(norm["action"][0].size)
    if target == LOWDIM:
        obs_layout, cameras, rgb, lowdim_keys, vision, image_norm, state = _lowdim(sd, norm, where)
    else:
        obs_layout, cameras, rgb, lowdim_keys, vision, image_norm, state = _image(c, pol, target, sd, norm, where)

    # joint_pos: the one low-dim key with the action's size (the node feeds it from /joint_states)
    names = {k: k for k in lowdim_keys}
    same = [k for k, d in lowdim_keys.items() if d == action_dim]
    if len(same) == 1:
        names[same[0]] = JOINTS
    elif JOINTS in lowdim_keys and lowdim_keys[JOINTS] != action_dim:
        raise InteropError(f"{where}: low-dim key {JOINTS!r} has {lowdim_keys[JOINTS]} values, "
                           f"the action {action_dim}")
    ours_lowdim = sorted(lowdim_keys, key=lambda k: (names[k] != JOINTS, k))
    lowdim = tuple(LowdimConfig(sanitize_name(names[k]), lowdim_keys[k]) for k in ours_lowdim)

    stats = {"action": Affine(*norm["action"])}
    for k in ours_lowdim:
        stats[sanitize_name(names[k])] = Affine(*norm[k])
    stats.update(image_norm)
    jn, placeholders = joint_names(joint_names_arg, action_dim, where)
    cfg = PolicyConfig(
        joint_names=jn, dt=1.0 / fps, obs=ObsConfig(cameras=cameras, lowdim=lowdim), n_obs_steps=t_o,
        horizon=horizon, n_action_steps=t_a, vision=vision,
        unet=UNetConfig(down_dims=tuple(int(d) for d in u["down_dims"]), kernel_size=int(u["kernel_size"]),
                        n_groups=int(u["n_groups"]), step_embed_dim=int(u["diffusion_step_embed_dim"]),
                        final_n_groups=8),
        noise=noise)

    # U-Net keys, FiLM, and the order of the observation features
    unet = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    unet = rename(unet, [(r"^((down|up)_modules\.\d+\.2)\.conv\.", r"\1.")])
    state.update({f"denoiser.{k}": v for k, v in unet.items()})
    if not u["cond_predict_scale"]:
        state = film_bias_only(state)
    ours = [(k, vision.feature_dim) for k in rgb] + [(k, lowdim_keys[k]) for k in ours_lowdim]
    perm = _permutation(obs_layout, ours)
    state = permute_global_cond(state, cfg.unet.step_embed_dim, t_o, perm)
    policy = build_checked(cfg, Normalizer(stats), state, where)

    observation_map = {k: sanitize_name(names.get(k, k)) for k, _ in obs_layout}
    metadata = {"imported_from": {"library": "diffusion_policy", "path": str(ckpt.resolve()), "policy": target,
                                  "weights": which, "noise_scheduler": _scheduler_name(c, pol)},
                "observation_map": observation_map, "placeholder_joint_names": placeholders}
    return policy, metadata, _report(cfg, observation_map, placeholders, which)


def _scheduler_name(c: Config, pol: dict) -> str:
    ns = pol.get("noise_scheduler")
    return SCHEDULERS.get(c.get(ns, "_target_", "policy.noise_scheduler", ""), "?") if isinstance(ns, dict) else "?"


def _noise(c: Config, pol: dict, where: str) -> NoiseConfig:
    ns = pol.get("noise_scheduler")
    if not isinstance(ns, dict):
        raise InteropError(f"{where}: policy.noise_scheduler is missing")
    p = "policy.noise_scheduler"
    target = c.get(ns, "_target_", p)
    if target not in SCHEDULERS:
        raise refuse(where, f"{p}._target_", target, "known: diffusers' DDPMScheduler and DDIMScheduler")
    checks = [("beta_schedule", "squaredcos_cap_v2", "dp_ros uses the squared-cosine schedule"),
              ("thresholding", False, "dynamic thresholding is not implemented"),
              ("timestep_spacing", "leading", "the reference's DDIM timesteps are 'leading'"),
              ("steps_offset", 0, "timestep offsets are not implemented")]
    if SCHEDULERS[target] == "DDIM":
        checks.append(("set_alpha_to_one", True, "the last DDIM step must go to abar = 1"))
    for field, want, why in checks:
        value = c.get(ns, field, p, want)
        if value != want:
            raise refuse(where, f"{p}.{field}", value, why)
    prediction = c.get(ns, "prediction_type", p, "epsilon")
    if prediction not in ("epsilon", "sample"):
        raise refuse(where, f"{p}.prediction_type", prediction, "known: epsilon, sample")
    k = int(c.get(ns, "num_train_timesteps", p, 1000))
    steps = c.get(pol, "num_inference_steps", "policy", None)
    return NoiseConfig(num_train_steps=k, num_inference_steps=int(steps or k), prediction_type=prediction,
                       timestep_spacing="leading", clip_sample=bool(c.get(ns, "clip_sample", p, True)),
                       clip_sample_range=float(c.get(ns, "clip_sample_range", p, 1.0)))


def _normalizer_params(sd: dict, where: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """normalizer.params_dict.<key>.scale/offset -> {key: (scale, offset)}."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in sd.items():
        m = re.fullmatch(r"normalizer\.params_dict\.([^.]+)\.(scale|offset)", key)
        if m:
            out.setdefault(m.group(1), {})[m.group(2)] = value.double().numpy().reshape(-1)
    for key, v in out.items():
        if set(v) != {"scale", "offset"} or v["scale"].shape != v["offset"].shape:
            raise InteropError(f"{where}: normalizer.params_dict.{key} needs a scale and an offset of one size")
    return {k: (v["scale"], v["offset"]) for k, v in out.items()}


def _camera_affine(norm, key: str, where: str, imagenet: bool = False) -> Affine:
    if key not in norm:
        raise InteropError(f"{where}: no normalizer for camera {key!r} (normalizer.params_dict.{key})")
    scale, offset = norm[key]
    if scale.size not in (1, 3):
        raise refuse(where, f"normalizer.params_dict.{key}.scale", f"{scale.size} values",
                     "an image normalizer has one value, or one per channel")
    scale, offset = np.broadcast_to(scale, (3,)).copy(), np.broadcast_to(offset, (3,)).copy()
    if imagenet:  # torchvision Normalize after the range normalizer
        scale, offset = scale / IMAGENET_STD, (offset - IMAGENET_MEAN) / IMAGENET_STD
    return Affine(scale, offset)


def _shape_meta(c: Config, pol: dict, where: str) -> dict[str, dict]:
    meta = c.get(pol, "shape_meta", "policy")
    if not isinstance(meta, dict) or not isinstance(meta.get("obs"), dict):
        raise InteropError(f"{where}: policy.shape_meta.obs is missing")
    out = {}
    for key, attr in meta["obs"].items():
        kind = attr.get("type", "low_dim")
        shape = [int(s) for s in attr.get("shape", [])]
        if kind not in ("rgb", "low_dim"):
            raise refuse(where, f"shape_meta.obs.{key}.type", kind, "known: rgb, low_dim")
        if kind == "rgb" and (len(shape) != 3 or shape[0] != 3):
            raise refuse(where, f"shape_meta.obs.{key}.shape", shape, "rgb observations must be 3 x H x W")
        if kind == "low_dim" and len(shape) != 1:
            raise refuse(where, f"shape_meta.obs.{key}.shape", shape, "low_dim observations must be vectors")
        out[key] = {"type": kind, "shape": shape}
    return out


def _image(c: Config, pol: dict, target: str, sd: dict, norm: dict, where: str):
    meta = _shape_meta(c, pol, where)
    rgb = [k for k, a in meta.items() if a["type"] == "rgb"]
    low = {k: a["shape"][0] for k, a in meta.items() if a["type"] == "low_dim"}
    state: dict[str, torch.Tensor] = {}
    image_norm = {}
    if target == HYBRID:
        crop = c.get(pol, "crop_shape", "policy", [76, 76])
        norm_kind = "group" if c.get(pol, "obs_encoder_group_norm", "policy", False) else "batch"
        layout = [(k, None) for k in meta]  # robomimic: in shape_meta order
        kp_w = sd.get(f"obs_encoder.obs_nets.{rgb[0]}.nets.1.nets.weight") if rgb else None
        proj_w = sd.get(f"obs_encoder.obs_nets.{rgb[0]}.nets.3.weight") if rgb else None
        if rgb and (kp_w is None or proj_w is None):
            raise InteropError(f"{where}: the robomimic encoder for {rgb[0]!r} is not ResNet-18 + spatial softmax + "
                               "linear (obs_encoder.obs_nets.*.nets.1 / nets.3 missing)")
        kp, feat = (int(kp_w.shape[0]), int(proj_w.shape[0])) if rgb else (32, 64)
        if crop and not c.get(pol, "eval_fixed_crop", "policy", False):
            raise refuse(where, "policy.eval_fixed_crop", False, "robomimic's crop is random even in evaluation; "
                         "dp_ros crops at the center, as the reference does with eval_fixed_crop: true")
        # robomimic's encoder applies a ReLU to each camera's features (ObservationEncoder's feature_activation)
        vision = VisionConfig(num_keypoints=kp, feature_dim=feat, shared=False, norm=norm_kind,
                              feature_activation="relu", crop_center="round")
        for key in rgb:
            pre = f"obs_encoder.obs_nets.{key}.nets."
            name = sanitize_name(key)
            temp = sd.get(pre + "1.temperature", torch.ones(1))
            if temp.numel() != 1 or float(temp) <= 0:
                raise refuse(where, f"{pre}1.temperature", temp.tolist(), "a positive softmax temperature")
            for k, v in sd.items():
                if k.startswith(pre + "0.nets."):
                    state[f"obs_encoder.cameras.encoders.{name}.backbone.{k[len(pre + '0.nets.'):]}"] = v
                elif k.startswith(pre + "1.nets."):  # softmax(conv(x) / T): fold T into the conv
                    state[f"obs_encoder.cameras.encoders.{name}.pool.keypoints.{k[len(pre + '1.nets.'):]}"] = \
                        v / temp.reshape(())
                elif k.startswith(pre + "3."):
                    state[f"obs_encoder.cameras.encoders.{name}.proj.{k[len(pre + '3.'):]}"] = v
            image_norm[name] = _camera_affine(norm, key, where)
        random_crop = True  # the hybrid policy crops in evaluation (the fixed center crop)
    else:
        enc = pol.get("obs_encoder")
        if not isinstance(enc, dict):
            raise InteropError(f"{where}: policy.obs_encoder is missing")
        p = "policy.obs_encoder"
        model = enc.get("rgb_model")
        name_ = c.get(model, "name", f"{p}.rgb_model", "resnet18") if isinstance(model, dict) else None
        if name_ != "resnet18" or (isinstance(model, dict) and c.get(model, "weights", f"{p}.rgb_model", None)
                                   in ("r3m", "R3M")):
            raise refuse(where, f"{p}.rgb_model", model, "the image encoder must be torchvision's ResNet-18")
        if c.get(enc, "resize_shape", p, None) is not None:
            raise refuse(where, f"{p}.resize_shape", c.get(enc, "resize_shape", p), "resize images before the node")
        crop = c.get(enc, "crop_shape", p, None)
        if isinstance(crop, dict):
            raise refuse(where, f"{p}.crop_shape", crop, "one crop for every camera")
        # With random_crop false the reference applies no crop at all (its CenterCrop is overwritten).
        random_crop = bool(c.get(enc, "random_crop", p, True))
        shared = bool(c.get(enc, "share_rgb_model", p, False))
        norm_kind = "group" if c.get(enc, "use_group_norm", p, False) else "batch"
        imagenet = bool(c.get(enc, "imagenet_norm", p, False))
        rgb = sorted(rgb)
        layout = [(k, None) for k in rgb] + [(k, None) for k in sorted(low)]
        vision = VisionConfig(num_keypoints=32, feature_dim=512, shared=shared, norm=norm_kind, pool="avg",
                              crop_center="round")
        for key in (["rgb"] if shared else rgb):
            pre = f"obs_encoder.key_model_map.{key}."
            dest = "shared" if shared else sanitize_name(key)
            for k, v in sd.items():
                if k.startswith(pre):
                    head, _, rest = k[len(pre):].partition(".")
                    if head in TORCHVISION_RESNET:
                        state[f"obs_encoder.cameras.encoders.{dest}.backbone.{TORCHVISION_RESNET[head]}.{rest}"] = v
                    elif head != "fc":
                        state[f"unknown.{k}"] = v  # reported by build_checked
        for key in rgb:
            image_norm[sanitize_name(key)] = _camera_affine(norm, key, where, imagenet)
    cameras = []
    for key in rgb:
        _, h, w = meta[key]["shape"]
        ch, cw = (int(crop[0]), int(crop[1])) if crop and random_crop else (h, w)
        cameras.append(CameraConfig(sanitize_name(key), h, w, ch, cw))
    feat = vision.feature_dim
    layout = [(k, feat if k in rgb else low[k]) for k, _ in layout]
    for k in low:
        if k not in norm:
            raise InteropError(f"{where}: no normalizer for low-dim observation {k!r}")
    return layout, tuple(cameras), rgb, low, vision, image_norm, state


def _lowdim(sd: dict, norm: dict, where: str):
    if "obs" not in norm:
        raise InteropError(f"{where}: the weights have no observation normalizer (normalizer.params_dict.obs)")
    dim = int(norm["obs"][0].size)
    return [("obs", dim)], (), [], {"obs": dim}, VisionConfig(), {}, {}


def _permutation(theirs: list[tuple[str, int]], ours: list[tuple[str, int]]) -> np.ndarray:
    start, pos = {}, 0
    for key, dim in theirs:
        start[key] = pos
        pos += dim
    ours_keys = [k for k, _ in ours]
    missing = [k for k in ours_keys if k not in start]
    if missing:
        raise InteropError(f"internal: observation keys {missing} have no place in the source layout {theirs}")
    return np.concatenate([start[k] + np.arange(d) for k, d in ours])


def _report(cfg: PolicyConfig, observation_map: dict[str, str], placeholders: bool, which: str) -> list[str]:
    lines = [f"weights: {which}", "observations (diffusion_policy -> dp_ros, and where the node reads them):"]
    for theirs, ours in observation_map.items():
        cam = next((c for c in cfg.obs.cameras if c.name == ours), None)
        if cam is not None:
            where = f"parameter cameras.{ours}.topic, {cam.width}x{cam.height} RGB"
        elif ours == JOINTS:
            where = f"/joint_states, the positions of the action joints ({cfg.action_dim})"
        else:
            where = f"parameter states.{ours}.topic (geometry_msgs/PoseArray)"
        lines.append(f"  {theirs} -> {ours}: {where}")
    if JOINTS not in observation_map.values():
        lines.append(f"  no observation has the action's {cfg.action_dim} values: the policy node needs the joint "
                     "positions as one, so this policy runs offline (predict_chunk) but not on the node")
    lines.append(f"actions: {cfg.action_dim} joint targets for {list(cfg.joint_names)}")
    if placeholders:
        lines.append("  placeholder joint names: the node refuses to move until they match your arm; "
                     "rerun with --joint-names in the order of the action vector")
    lines.append(f"dt {cfg.dt:.4g} s, T_o {cfg.n_obs_steps}, T_p {cfg.horizon}, T_a {cfg.n_action_steps}, "
                 f"{cfg.noise.num_inference_steps} DDIM steps")
    return lines
