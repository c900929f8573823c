"""Model configuration: frozen dataclasses that check themselves.

One dataclass per concern. ``validate()`` raises ``ValueError`` with a sentence a
user can act on; derived values are properties. Training settings (optimizer,
learning rate, epochs) live elsewhere.

The horizons, as in Diffusion Policy (Chi et al. 2023)::

    time (control periods)   0   1   2   3   4   5   6   7  ...  T_p-1
    observations  (T_o=2)   [o0  o1]
    prediction    (T_p=16)  [a0  a1  a2  a3  a4  a5  a6  a7  ...  a15]
    execution     (T_a=8)       [a1  a2  a3  a4  a5  a6  a7  a8]
                                 ^ index T_o-1: the action for the newest observation

The executable slice is ``T_o-1 ... T_o-1+T_a-1``, so ``T_a <= T_p - T_o + 1``.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

HEADS = ("diffusion", "regression")
REGRESSION_NETS = ("mlp", "denoiser")  # the regression head's network (see model.policy.RegressionPolicy)
DENOISERS = ("unet", "transformer")
PREDICTION_TYPES = ("epsilon", "sample")
TIMESTEP_SPACINGS = ("capped", "trailing", "leading")
VISION_NORMS = ("group", "batch")
VISION_POOLS = ("spatial_softmax", "avg")
FEATURE_ACTIVATIONS = ("none", "relu")
CROP_CENTERS = ("floor", "round")


def _check_name(kind: str, name: str) -> None:
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"{kind} {name!r} must be non-empty letters, digits and underscores")


@dataclass(frozen=True)
class CameraConfig:
    """One camera: RGB uint8 images of (height, width), cropped to (crop_height, crop_width)."""

    name: str
    height: int
    width: int
    crop_height: int
    crop_width: int

    def validate(self) -> None:
        _check_name("camera name", self.name)
        if self.crop_height > self.height or self.crop_width > self.width:
            raise ValueError(
                f"camera {self.name!r}: crop {self.crop_height}x{self.crop_width} is larger "
                f"than the image {self.height}x{self.width}"
            )
        if self.crop_height < 32 or self.crop_width < 32:
            raise ValueError(
                f"camera {self.name!r}: crop {self.crop_height}x{self.crop_width} is too small; "
                "the ResNet-18 backbone needs at least 32x32 pixels"
            )


@dataclass(frozen=True)
class LowdimConfig:
    """One low-dimensional observation stream, for example ``joint_pos`` of size J."""

    name: str
    dim: int

    def validate(self) -> None:
        _check_name("low-dimensional key", self.name)
        if self.dim < 1:
            raise ValueError(f"low-dimensional key {self.name!r} has dim {self.dim}; it must be >= 1")


@dataclass(frozen=True)
class ObsConfig:
    cameras: tuple[CameraConfig, ...] = ()
    lowdim: tuple[LowdimConfig, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras) + tuple(k.name for k in self.lowdim)

    def validate(self) -> None:
        if not self.cameras and not self.lowdim:
            raise ValueError("the observation has no cameras and no low-dimensional keys")
        for item in (*self.cameras, *self.lowdim):
            item.validate()
        names = self.keys
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"observation keys must be unique; repeated: {dup}")
        if "action" in names:
            raise ValueError("'action' is reserved and cannot be an observation key")


@dataclass(frozen=True)
class VisionConfig:
    """ResNet-18 with GroupNorm and a spatial-softmax keypoint head (one per camera by default).

    The last four fields exist for policies imported from other libraries (docs/interop.md)
    and keep their defaults in policies trained here: ``norm`` ``batch`` (a pretrained
    backbone's BatchNorm, running statistics in eval), ``pool`` ``avg`` (global average
    pooling, 8 * width features, no projection: the reference's image policy),
    ``feature_activation`` ``relu`` after the projection (LeRobot), and ``crop_center``,
    where the evaluation crop sits when the margin is odd: ``floor`` (robomimic's)
    or ``round`` (torchvision's CenterCrop, Python's round half to even)."""

    num_keypoints: int = 32
    feature_dim: int = 64
    shared: bool = False
    group_size: int = 16  # GroupNorm groups = channels // group_size
    width: int = 64  # channels of the first stage (64: torchvision's ResNet-18; 32: a quarter of the compute)
    norm: str = "group"
    pool: str = "spatial_softmax"
    feature_activation: str = "none"
    crop_center: str = "floor"

    def validate(self) -> None:
        if self.num_keypoints < 1 or self.feature_dim < 1:
            raise ValueError("vision num_keypoints and feature_dim must be >= 1")
        if self.width < 1:
            raise ValueError(f"vision width {self.width} must be >= 1")
        for name, value, allowed in (("norm", self.norm, VISION_NORMS), ("pool", self.pool, VISION_POOLS),
                                     ("feature_activation", self.feature_activation, FEATURE_ACTIVATIONS),
                                     ("crop_center", self.crop_center, CROP_CENTERS)):
            if value not in allowed:
                raise ValueError(f"vision {name} {value!r} must be one of {allowed}")
        if self.norm == "group" and self.width % self.group_size != 0:
            raise ValueError(
                f"vision group_size {self.group_size} must divide width {self.width} (ResNet-18's narrowest layer)"
            )
        if self.pool == "avg" and self.feature_dim != 8 * self.width:
            raise ValueError(f"vision pool 'avg' gives 8 * width = {8 * self.width} features (no projection); "
                             f"feature_dim is {self.feature_dim}")


@dataclass(frozen=True)
class UNetConfig:
    """1-D temporal conditional U-Net (the paper's CNN denoiser)."""

    down_dims: tuple[int, ...] = (256, 512, 1024)
    kernel_size: int = 5
    n_groups: int = 8
    step_embed_dim: int = 128
    # GroupNorm groups of the final conv block; 0: n_groups. The reference implementation
    # and LeRobot always use 8 there, whatever n_groups is (their imports set it).
    final_n_groups: int = 0

    @property
    def final_groups(self) -> int:
        return self.final_n_groups or self.n_groups

    @property
    def horizon_multiple(self) -> int:
        # Every level but the last halves the time axis.
        return 2 ** (len(self.down_dims) - 1)

    def validate(self) -> None:
        if not self.down_dims:
            raise ValueError("unet down_dims must name at least one level")
        for d in self.down_dims:
            if d % self.n_groups != 0:
                raise ValueError(f"unet width {d} must be divisible by n_groups = {self.n_groups}")
        if self.final_n_groups < 0 or self.down_dims[0] % self.final_groups:
            raise ValueError(f"unet final_n_groups {self.final_n_groups} must be 0 (n_groups) or divide "
                             f"down_dims[0] = {self.down_dims[0]}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"unet kernel_size {self.kernel_size} must be odd and >= 1")
        if self.step_embed_dim < 2 or self.step_embed_dim % 2:
            raise ValueError(f"unet step_embed_dim {self.step_embed_dim} must be even and >= 2")


@dataclass(frozen=True)
class TransformerConfig:
    """Time-series diffusion transformer: actions as tokens, observations by cross-attention."""

    n_layer: int = 8
    n_head: int = 4
    n_emb: int = 256
    p_drop_emb: float = 0.0
    p_drop_attn: float = 0.3

    def validate(self) -> None:
        if self.n_layer < 1 or self.n_head < 1:
            raise ValueError("transformer n_layer and n_head must be >= 1")
        if self.n_emb % self.n_head or self.n_emb % 2:
            raise ValueError(
                f"transformer n_emb {self.n_emb} must be even and divisible by n_head {self.n_head}"
            )
        for p in (self.p_drop_emb, self.p_drop_attn):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"transformer dropout {p} must be in [0, 1)")


@dataclass(frozen=True)
class NoiseConfig:
    """DDPM training schedule (squared cosine) and DDIM sampling.

    ``timestep_spacing`` picks the DDIM timesteps (``noise.ddim_plan``; it changes
    sampling only, never training): ``leading`` is the reference implementation's
    (one step starts from timestep 0, so 1-2 steps give near-random actions; imported
    checkpoints keep it for parity), ``trailing`` starts at the highest noise level
    K-1, ``capped`` (the default) starts at the highest timestep whose x0 estimate is
    well conditioned for the prediction type, which gives sane actions at any step
    count (docs/model.md has the measurements)."""

    num_train_steps: int = 100
    num_inference_steps: int = 10
    prediction_type: str = "epsilon"
    timestep_spacing: str = "capped"
    clip_sample: bool = True  # clip each step's x0 estimate to [-clip_sample_range, clip_sample_range]
    clip_sample_range: float = 1.0

    def validate(self) -> None:
        if not (math.isfinite(self.clip_sample_range) and self.clip_sample_range > 0):
            raise ValueError(f"clip_sample_range {self.clip_sample_range} must be a positive number")
        if self.num_train_steps < 1:
            raise ValueError(f"num_train_steps {self.num_train_steps} must be >= 1")
        if not 1 <= self.num_inference_steps <= self.num_train_steps:
            raise ValueError(
                f"num_inference_steps {self.num_inference_steps} must be in "
                f"1..num_train_steps ({self.num_train_steps})"
            )
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type {self.prediction_type!r} must be one of {PREDICTION_TYPES}"
            )
        if self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(
                f"timestep_spacing {self.timestep_spacing!r} must be one of {TIMESTEP_SPACINGS}"
            )


@dataclass(frozen=True)
class PolicyConfig:
    """Everything needed to rebuild a policy: shapes, horizons, dt, names, architecture."""

    joint_names: tuple[str, ...]
    dt: float
    obs: ObsConfig
    n_obs_steps: int = 2  # T_o
    horizon: int = 16  # T_p
    n_action_steps: int = 8  # T_a (default; the node may use fewer or more)
    head: str = "diffusion"
    denoiser: str = "unet"
    regression_net: str = "mlp"  # regression head: a small MLP, or the denoiser network itself (same size)
    vision: VisionConfig = field(default_factory=VisionConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    # Seconds from the time an action is filed under in the training data to the time it
    # should be reached (docs/timing.md): 0 for dp_ros's recordings; 1/fps for policies
    # trained on LeRobot's, which file the action sent at t. The node's default.
    action_time_offset: float = 0.0

    @property
    def action_dim(self) -> int:
        return len(self.joint_names)

    @property
    def max_action_steps(self) -> int:
        return self.horizon - self.n_obs_steps + 1

    @property
    def obs_feature_dim(self) -> int:
        """Features per observation step: every camera's features, then the low-dim keys."""
        return len(self.obs.cameras) * self.vision.feature_dim + sum(k.dim for k in self.obs.lowdim)

    def validate(self) -> "PolicyConfig":
        if not self.joint_names:
            raise ValueError("joint_names is empty; the policy needs at least one joint")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"joint_names has duplicates: {list(self.joint_names)}")
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt {self.dt} must be a positive number of seconds")
        if not (math.isfinite(self.action_time_offset) and abs(self.action_time_offset) <= 1.0):
            raise ValueError(f"action_time_offset {self.action_time_offset} must be a number of seconds in [-1, 1]")
        self.obs.validate()
        if self.n_obs_steps < 1:
            raise ValueError(f"n_obs_steps (T_o) {self.n_obs_steps} must be >= 1")
        if self.horizon < self.n_obs_steps:
            raise ValueError(
                f"horizon (T_p) {self.horizon} must be >= n_obs_steps (T_o) {self.n_obs_steps}"
            )
        if not 1 <= self.n_action_steps <= self.max_action_steps:
            raise ValueError(
                f"n_action_steps (T_a) {self.n_action_steps} must be in 1..T_p - T_o + 1 "
                f"= {self.max_action_steps}"
            )
        if self.head not in HEADS:
            raise ValueError(f"head {self.head!r} must be one of {HEADS}")
        if self.denoiser not in DENOISERS:
            raise ValueError(f"denoiser {self.denoiser!r} must be one of {DENOISERS}")
        if self.obs.cameras:
            self.vision.validate()
        if self.regression_net not in REGRESSION_NETS:
            raise ValueError(f"regression_net {self.regression_net!r} must be one of {REGRESSION_NETS}")
        if self.head == "diffusion":
            self.noise.validate()
        if self.head == "diffusion" or self.regression_net == "denoiser":
            if self.denoiser == "unet":
                self.unet.validate()
                m = self.unet.horizon_multiple
                if self.horizon % m:
                    raise ValueError(
                        f"horizon (T_p) {self.horizon} must be divisible by "
                        f"2**(len(down_dims)-1) = {m} for the U-Net with down_dims "
                        f"{list(self.unet.down_dims)}"
                    )
            else:
                self.transformer.validate()
        return self

    # ---- serialization (plain dicts, JSON-safe) ----

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PolicyConfig":
        return _from_plain(cls, data, "policy")


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj


def _from_plain(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known keys are {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required key is missing
        raise ValueError(f"{where}: {exc}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _from_plain(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(hint)
        if Ellipsis in args:  # tuple[X, ...]: any length
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):  # tuple[X, Y]: exactly that many
            raise ValueError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint) or (
        hint is int and isinstance(value, bool)
    ):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
