"""The matmul forms of the U-Net's convolutions equal the nn modules they replace."""
import copy

import pytest
import torch
import torch.nn as nn

from dp_ros.model.config import UNetConfig
from dp_ros.model.unet1d import ConditionalUnet1D
from dp_ros.runtime.matmul_conv import MatmulConv1d, MatmulConvTranspose1d, use_matmul_convs


@pytest.mark.parametrize("c_in,c_out,k,stride,pad,bias", [
    (6, 8, 5, 1, 2, True), (8, 8, 3, 2, 1, True), (8, 4, 1, 1, 0, True), (5, 7, 3, 1, 1, False), (4, 6, 4, 3, 0, True),
])
def test_conv1d(c_in, c_out, k, stride, pad, bias):
    torch.manual_seed(0)
    conv = nn.Conv1d(c_in, c_out, k, stride=stride, padding=pad, bias=bias)
    x = torch.randn(2, c_in, 16)
    with torch.no_grad():
        assert torch.allclose(MatmulConv1d(conv)(x), conv(x), atol=1e-5)


@pytest.mark.parametrize("k,stride,pad,t", [(4, 2, 1, 4), (4, 2, 1, 8), (3, 1, 1, 5), (2, 2, 0, 3)])
def test_conv_transpose1d(k, stride, pad, t):
    torch.manual_seed(0)
    conv = nn.ConvTranspose1d(6, 5, k, stride=stride, padding=pad)
    x = torch.randn(2, 6, t)
    with torch.no_grad():
        got = MatmulConvTranspose1d(conv)(x)
        assert got.shape == conv(x).shape
        assert torch.allclose(got, conv(x), atol=1e-5)


def test_unsupported_convs_are_refused():
    with pytest.raises(ValueError, match="unsupported Conv1d"):
        MatmulConv1d(nn.Conv1d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match="unsupported ConvTranspose1d"):
        MatmulConvTranspose1d(nn.ConvTranspose1d(4, 4, 3, stride=2, output_padding=1))


def test_whole_unet_with_matmul_convs():
    torch.manual_seed(0)
    unet = ConditionalUnet1D(7, 20, UNetConfig(down_dims=(16, 32, 64), step_embed_dim=16)).eval()
    fast = copy.deepcopy(unet)
    n_conv = sum(isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) for m in unet.modules())
    assert use_matmul_convs(fast) == n_conv
    assert not any(isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) for m in fast.modules())
    x, k, cond = torch.randn(1, 16, 7), torch.tensor([37]), torch.randn(1, 20)
    with torch.no_grad():
        assert torch.allclose(fast(x, k, cond), unet(x, k, cond), atol=1e-5)
    # The weights are the original modules' parameters, not copies.
    conv = nn.Conv1d(4, 4, 3)
    assert MatmulConv1d(conv).weight is conv.weight
