"""Image encoder: ResNet-18 with GroupNorm and a spatial-softmax keypoint head.

As in Diffusion Policy (Chi et al. 2023, Sec. IV-B): every BatchNorm is replaced by
GroupNorm (BatchNorm's running statistics interact badly with the EMA of weights used
for diffusion training) and the global average pool by spatial softmax, which keeps
where features are rather than only how strong they are, followed by a linear
projection.

Imported policies may keep BatchNorm, average pooling, a ReLU after the projection,
torchvision's crop position and a per-channel normalization of the image
(``VisionConfig``, docs/interop.md).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from dp_ros.model.config import CameraConfig, VisionConfig

log = logging.getLogger(__name__)


class SpatialSoftmax(nn.Module):
    """Feature map -> K expected (x, y) keypoint positions in [-1, 1]."""

    def __init__(self, in_channels: int, height: int, width: int, num_keypoints: int):
        super().__init__()
        self.keypoints = nn.Conv2d(in_channels, num_keypoints, kernel_size=1)
        ys, xs = torch.meshgrid(
            torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij"
        )
        # (H*W, 2): x then y for every pixel.
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), persistent=False)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        x = self.keypoints(feat)  # (B, C, h, w) -> (B, K, h, w)
        b, k = x.shape[:2]
        attn = F.softmax(x.reshape(b, k, -1), dim=-1)  # (B, K, h*w)
        return (attn @ self.grid).reshape(b, k * 2)  # (B, K, 2) -> (B, 2K)


class _BasicBlock(nn.Module):
    """ResNet's basic block, with torchvision's attribute names (so its state dicts load)."""

    def __init__(self, cin: int, cout: int, stride: int, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = norm(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = norm(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _resnet18(group_size: int, width: int = 64, norm_kind: str = "group") -> nn.Sequential:
    """ResNet-18 without its average pool and classifier, GroupNorm for BatchNorm (unless
    ``norm_kind`` is ``batch``): (B, 3, H, W) -> (B, 8 * width, H/32, W/32). ``width`` 64 is
    torchvision's ResNet-18 (same module names and shapes, so its weights load); 32 is a
    quarter of the compute. Sequential indices follow torchvision's children: 0 conv1,
    1 bn1, 4..7 layer1..4."""
    def norm(c: int) -> nn.Module:
        return nn.BatchNorm2d(c) if norm_kind == "batch" else nn.GroupNorm(c // group_size, c)

    layers: list[nn.Module] = [nn.Conv2d(3, width, 7, 2, 3, bias=False), norm(width), nn.ReLU(inplace=True),
                               nn.MaxPool2d(3, 2, 1)]
    cin = width
    for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
        stride = 1 if i == 0 else 2
        layers.append(nn.Sequential(_BasicBlock(cin, cout, stride, norm), _BasicBlock(cout, cout, 1, norm)))
        cin = cout
    net = nn.Sequential(*layers)
    for m in net.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


class GlobalAvgPool(nn.Module):
    """(B, C, h, w) -> (B, C): torchvision ResNet's average pool and flatten."""

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return feat.mean(dim=(2, 3))


class ImageEncoder(nn.Module):
    """RGB float images (in [0, 1], or normalized) at the crop size -> (B, feature_dim)."""

    def __init__(self, crop_height: int, crop_width: int, cfg: VisionConfig):
        super().__init__()
        self.backbone = _resnet18(cfg.group_size, cfg.width, cfg.norm)
        h, w = _feature_hw(crop_height), _feature_hw(crop_width)
        if cfg.pool == "avg":
            self.pool, self.proj = GlobalAvgPool(), nn.Identity()
        else:
            self.pool = SpatialSoftmax(8 * cfg.width, h, w, cfg.num_keypoints)
            self.proj = nn.Linear(cfg.num_keypoints * 2, cfg.feature_dim)
        self.relu = cfg.feature_activation == "relu"

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        out = self.proj(self.pool(self.backbone(img)))
        return F.relu(out) if self.relu else out


def _feature_hw(n: int) -> int:
    # ResNet-18: a stride-2 conv, a stride-2 max pool, then three stride-2 stages.
    for _ in range(5):
        n = (n - 1) // 2 + 1
    return n


def center_offset(size: int, crop: int, center: str = "floor") -> int:
    """Where a center crop starts: half the margin, rounded down (``floor``) or by
    Python's round, half to even (``round``: torchvision's CenterCrop)."""
    return (size - crop) // 2 if center == "floor" else int(round((size - crop) / 2.0))


def crop_images(img: torch.Tensor, crop_h: int, crop_w: int, random: bool, center: str = "floor") -> torch.Tensor:
    """Crop (N, C, H, W) to (N, C, crop_h, crop_w): random per image, or the center."""
    n, c, h, w = img.shape
    if (h, w) == (crop_h, crop_w):
        return img
    if not random:
        top, left = center_offset(h, crop_h, center), center_offset(w, crop_w, center)
        return img[:, :, top : top + crop_h, left : left + crop_w]
    tops = torch.randint(0, h - crop_h + 1, (n,), device=img.device)
    lefts = torch.randint(0, w - crop_w + 1, (n,), device=img.device)
    rows = tops[:, None] + torch.arange(crop_h, device=img.device)  # (N, crop_h)
    cols = lefts[:, None] + torch.arange(crop_w, device=img.device)  # (N, crop_w)
    idx_n = torch.arange(n, device=img.device)[:, None, None]
    # Advanced indexing (N, crop_h, crop_w, C) -> (N, C, crop_h, crop_w)
    return img.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


class CameraEncoders(nn.Module):
    """Per-camera (or one shared) image encoders.

    Input per camera: uint8 RGB (B, T, H, W, 3) at the camera's configured size.
    Output: (B, T, n_cameras * feature_dim), cameras in configuration order.
    ``image_norm``: per camera, a per-channel (scale, offset) applied to the image in [0, 1]
    (imported policies; none for policies trained here).
    """

    def __init__(self, cameras: tuple[CameraConfig, ...], cfg: VisionConfig,
                 image_norm: dict[str, tuple] | None = None):
        super().__init__()
        self.cameras = cameras
        self.crop_center = cfg.crop_center
        self.normalized = sorted(image_norm or {})
        for name, (scale, offset) in (image_norm or {}).items():
            for kind, v in (("scale", scale), ("offset", offset)):
                t = torch.as_tensor(v, dtype=torch.float32).reshape(1, 3, 1, 1)  # per RGB channel
                self.register_buffer(f"image_{kind}_{name}", t, persistent=False)
        if cfg.shared:
            sizes = {(c.crop_height, c.crop_width) for c in cameras}
            if len(sizes) > 1:
                raise ValueError(
                    f"a shared image encoder needs one crop size for every camera; got {sorted(sizes)}"
                )
            shared = ImageEncoder(cameras[0].crop_height, cameras[0].crop_width, cfg)
            self.encoders = nn.ModuleDict({"shared": shared})
        else:
            self.encoders = nn.ModuleDict(
                {c.name: ImageEncoder(c.crop_height, c.crop_width, cfg) for c in cameras}
            )

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = []
        for cam in self.cameras:
            x = images[cam.name]
            b, t = x.shape[:2]
            x = x.reshape(b * t, *x.shape[2:])  # (B, T, H, W, 3) -> (B*T, H, W, 3)
            # (B*T, H, W, 3) -> (B*T, 3, H, W) in [0, 1], in the encoder's dtype (float16 on a GPU backend)
            x = x.permute(0, 3, 1, 2).to(self.dtype) / 255.0
            x = crop_images(x, cam.crop_height, cam.crop_width, random=self.training, center=self.crop_center)
            if cam.name in self.normalized:  # per channel: the same on the crop, on fewer pixels
                x = x * getattr(self, f"image_scale_{cam.name}").to(x.dtype) \
                    + getattr(self, f"image_offset_{cam.name}").to(x.dtype)
            enc = self.encoders["shared" if "shared" in self.encoders else cam.name]
            feats.append(enc(x).reshape(b, t, -1))  # (B*T, F) -> (B, T, F)
        return torch.cat(feats, dim=-1)


def load_pretrained_backbone(encoders: CameraEncoders, path: str | Path) -> None:
    """Initialise every backbone from a torchvision ResNet-18 state dict in a local file.

    Accepts ``.safetensors`` or a ``.pth`` state dict (read with ``weights_only=True``,
    so no code from the file runs). Convolution weights load as they are; each
    BatchNorm's affine weight and bias initialise the GroupNorm in its place, and the
    BatchNorm running statistics and the classifier are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained backbone weights not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # torchvision names (conv1.weight, layer1.0.bn1.weight, ...) -> Sequential indices.
    prefix = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    mapped = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head not in prefix or key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        mapped[f"{prefix[head]}.{rest}"] = value
    for name, enc in encoders.encoders.items():
        if enc.backbone[0].out_channels != 64:
            raise ValueError(f"pretrained ResNet-18 weights need vision width 64; encoder {name!r} has "
                             f"width {enc.backbone[0].out_channels}")
        missing, unexpected = enc.backbone.load_state_dict(mapped, strict=False)
        if unexpected or missing:
            raise ValueError(
                f"{path} is not a ResNet-18 state dict: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        log.info("loaded pretrained ResNet-18 weights from %s into encoder %r", path, name)
