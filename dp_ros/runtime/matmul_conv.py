"""1-D convolutions as one matrix product each, for inference on a GPU.

At batch 1 the U-Net's convolutions are tiny in time (T_p = 16) and large in
channels (up to 1024 x 1024 x 5 weights). cuDNN runs them with NHWC kernels and
transposes the NCHW weight on every call: on an H100 those transposes were half of
the chunk's GPU time (docs/benchmarks.md). As a matrix product the stored weight is
used as it is, ``(C_out, C_in * k)``, against the input's columns:

    y[b, o, t] = sum_{c, j} W[o, c, j] * x_pad[b, c, s*t + j] + bias[o]

A transposed convolution is the product the other way round followed by the
overlap-add of its columns (``fold``). ``use_matmul_convs`` swaps the modules in place,
sharing the weights; results equal the cuDNN ones to rounding (tested on the CPU).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class MatmulConv1d(nn.Module):
    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        if conv.groups != 1 or conv.dilation != (1,) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"unsupported Conv1d for the matmul form: {conv}")
        self.weight, self.bias = conv.weight, conv.bias  # (C_out, C_in, k), shared
        self.k, self.stride, self.pad = conv.kernel_size[0], conv.stride[0], conv.padding[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c_out = self.weight.shape[0]
        if self.k == 1 and self.stride == 1 and self.pad == 0:
            cols = x  # (B, C_in, T)
        else:
            b, c_in, _ = x.shape
            cols = F.pad(x, (self.pad, self.pad)).unfold(2, self.k, self.stride)  # (B, C_in, T_out, k)
            cols = cols.permute(0, 1, 3, 2).reshape(b, c_in * self.k, -1)  # (B, C_in*k, T_out)
        y = torch.matmul(self.weight.reshape(c_out, -1), cols)  # (B, C_out, T_out)
        return y if self.bias is None else y + self.bias[:, None]


class MatmulConvTranspose1d(nn.Module):
    def __init__(self, conv: nn.ConvTranspose1d):
        super().__init__()
        if conv.groups != 1 or conv.dilation != (1,) or conv.output_padding != (0,):
            raise ValueError(f"unsupported ConvTranspose1d for the matmul form: {conv}")
        self.weight, self.bias = conv.weight, conv.bias  # (C_in, C_out, k), shared
        c_in, c_out, k = conv.weight.shape
        # (C_in, C_out, k) -> (C_out * k, C_in): a copy, made once; the module's weight stays the parameter
        self.register_buffer("w_cols", conv.weight.detach().permute(1, 2, 0).reshape(c_out * k, c_in).clone(),
                             persistent=False)
        self.k, self.stride, self.pad, self.c_out = k, conv.stride[0], conv.padding[0], c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t_in = x.shape[-1]
        t_out = (t_in - 1) * self.stride - 2 * self.pad + self.k
        cols = torch.matmul(self.w_cols, x)  # (B, C_out*k, T_in)
        y = F.fold(cols, output_size=(1, t_out), kernel_size=(1, self.k), stride=(1, self.stride),
                   padding=(0, self.pad))  # overlap-add: (B, C_out, 1, T_out)
        y = y[:, :, 0]
        return y if self.bias is None else y + self.bias[:, None]


def use_matmul_convs(module: nn.Module) -> int:
    """Replace every Conv1d and ConvTranspose1d under ``module`` in place; returns how many.
    Call after any dtype or device change (the transposed form keeps a converted copy)."""
    n = 0
    for name, child in module.named_children():
        if isinstance(child, nn.Conv1d):
            setattr(module, name, MatmulConv1d(child))
            n += 1
        elif isinstance(child, nn.ConvTranspose1d):
            setattr(module, name, MatmulConvTranspose1d(child))
            n += 1
        else:
            n += use_matmul_convs(child)
    return n
