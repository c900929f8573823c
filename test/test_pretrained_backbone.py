"""Pretrained ResNet-18 weights load from a local file into the GroupNorm backbone."""
import pytest
import torch
import torchvision
from safetensors.torch import save_file

from dp_ros.model.vision import CameraEncoders, load_pretrained_backbone

from model_helpers import tiny_config


def test_loads_torchvision_state_dict(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None)
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    cfg = tiny_config()
    enc = CameraEncoders(cfg.obs.cameras, cfg.vision)
    load_pretrained_backbone(enc, path)
    for name in ("left", "right"):
        bb = enc.encoders[name].backbone
        assert torch.equal(bb[0].weight, ref.conv1.weight)
        assert torch.equal(bb[7][1].conv2.weight, ref.layer4[1].conv2.weight)
        assert torch.equal(bb[4][0].bn1.weight, ref.layer1[0].bn1.weight)  # BN affine -> GN affine

    pth = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), pth)
    load_pretrained_backbone(CameraEncoders(cfg.obs.cameras, cfg.vision), pth)


def test_rejects_wrong_files(tmp_path):
    cfg = tiny_config()
    enc = CameraEncoders(cfg.obs.cameras, cfg.vision)
    with pytest.raises(FileNotFoundError):
        load_pretrained_backbone(enc, tmp_path / "missing.pth")
    path = tmp_path / "other.safetensors"
    save_file({"conv1.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(Exception, match="conv1|size mismatch|not a ResNet-18"):
        load_pretrained_backbone(enc, path)


def test_backbone_is_torchvision_resnet18_with_groupnorm(tmp_path):
    """Width 64 is torchvision's ResNet-18 (GroupNorm for BatchNorm): same parameters, same output."""
    import dataclasses

    from dp_ros.model.vision import _resnet18

    ref = torchvision.models.resnet18(weights=None, norm_layer=lambda c: torch.nn.GroupNorm(c // 16, c))
    ref = torch.nn.Sequential(*list(ref.children())[:-2]).eval()
    ours = _resnet18(16).eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    ours.load_state_dict(ref.state_dict())
    x = torch.rand(2, 3, 64, 80)
    torch.testing.assert_close(ours(x), ref(x))

    narrow = _resnet18(8, width=32)
    assert narrow(x).shape == (2, 256, 2, 3)
    n64 = sum(p.numel() for p in ours.parameters())
    n32 = sum(p.numel() for p in narrow.parameters())
    assert 0.2 < n32 / n64 < 0.3
    cfg = tiny_config()
    narrow_cfg = dataclasses.replace(cfg.vision, width=32, group_size=8)
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="width 64"):
        load_pretrained_backbone(CameraEncoders(cfg.obs.cameras, narrow_cfg), path)
