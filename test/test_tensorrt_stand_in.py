"""The TensorRT backend and `dp_ros compile` against a stand-in for the tensorrt package.

TensorRT cannot be installed here, so ``fake_tensorrt`` provides the TensorRT 10 calls
the backend makes and runs the graphs with ONNX Runtime, reading and writing the
memory the backend binds. This holds the backend's own work (engine cache and keys,
bindings, the chunk loop, the DDIM updates, error messages) to the PyTorch reference;
TensorRT's parser, kernels, FP16 accuracy and CUDA graphs are covered only by the GPU
tests in test_backends.py, which need TensorRT.
"""
import contextlib
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import fake_tensorrt
from dp_ros.cli import main as cli_main
from dp_ros.model import load_checkpoint
from dp_ros.runtime import tensorrt_backend as trt_mod

from model_helpers import FP16_TOL, FP32_TOL, J, example_guide, window
from model_helpers import reference_chunk as _reference


class _Stream:
    cuda_stream = 0

    def synchronize(self):
        pass


@pytest.fixture
def stand_in(monkeypatch):
    """tensorrt -> the stand-in; the CUDA device queries and streams -> CPU equivalents."""
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt)
    monkeypatch.setattr(fake_tensorrt, "builds", [])
    monkeypatch.setattr(fake_tensorrt, "fail_builds", False)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device=None: SimpleNamespace(name="Stand-in GPU", major=9, minor=0))
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: _Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    return fake_tensorrt


def _backend(ckpt, precision="fp32"):
    return trt_mod.TensorRTBackend(load_checkpoint(ckpt), "cpu", ckpt, precision=precision, cuda_graph=False)


@pytest.mark.parametrize("denoiser,prediction", [("unet", "epsilon"), ("transformer", "epsilon"), ("unet", "sample")])
def test_chunks_match_pytorch_fp32(stand_in, ckpt_copy, denoiser, prediction):
    ckpt = ckpt_copy(denoiser, prediction)
    backend = _backend(ckpt)
    obs = window(backend.config)
    noise = np.random.default_rng(1).standard_normal((8, J)).astype(np.float32)
    for steps in (1, 3, 10):
        enc_runs, den_runs = backend.enc.context.enqueued, backend.den.context.enqueued
        got = backend.predict(obs, steps, noise)
        assert got.shape == (8, J) and got.dtype == np.float64
        diff = np.max(np.abs(got - _reference(ckpt, obs, noise, steps)))
        assert diff < FP32_TOL, (steps, diff)
        # One encoder run and one denoiser run per DDIM step.
        assert (backend.enc.context.enqueued - enc_runs, backend.den.context.enqueued - den_runs) == (1, steps)
    guide = example_guide(8, J)  # seam mode inpaint: the guidance runs in the denoiser engine
    diff = np.max(np.abs(backend.predict(obs, 10, noise, guide) - _reference(ckpt, obs, noise, 10, guide)))
    assert diff < FP32_TOL, diff
    # The bound buffers are re-read: a new observation or new noise changes the chunk.
    ref = backend.predict(obs, 10, noise)
    assert np.array_equal(ref, got)  # no guide after a guided chunk: the guidance buffers were cleared
    assert not np.allclose(backend.predict(window(backend.config, np.random.default_rng(5)), 10, noise), ref)
    assert not np.allclose(backend.predict(obs, 10, noise[::-1].copy()), ref)
    assert np.array_equal(backend.predict(obs, 10, noise), ref)


def test_fp16_engines_within_the_fp16_tolerance(stand_in, ckpt_copy):
    ckpt = ckpt_copy()
    backend = _backend(ckpt, "fp16")
    assert [b["fp16"] for b in stand_in.builds] == [True, True]
    obs = window(backend.config)
    noise = np.random.default_rng(2).standard_normal((8, J)).astype(np.float32)
    diff = np.max(np.abs(backend.predict(obs, 10, noise) - _reference(ckpt, obs, noise, 10)))
    assert 0 < diff < FP16_TOL  # the stand-in rounds engine outputs to float16


def test_engines_are_built_once_per_key_and_share_a_timing_cache(stand_in, ckpt_copy):
    ckpt = ckpt_copy()
    _backend(ckpt)
    assert len(stand_in.builds) == 2
    assert stand_in.builds[0]["timing_cache_in"] == b"" and stand_in.builds[1]["timing_cache_in"] == b"tactic;"
    assert stand_in.builds[0]["workspace"] == 2 << 30
    directory = ckpt / ".build" / "tensorrt"
    assert len(list(directory.glob("encoder-*.engine"))) == len(list(directory.glob("denoiser-*.engine"))) == 1
    assert (directory / f"timing-Stand-in_GPU-{stand_in.__version__}.cache").read_bytes() == b"tactic;tactic;"

    again = _backend(ckpt)
    assert len(stand_in.builds) == 2 and all(f.reused for f in again.engine_files)
    _backend(ckpt, "fp16")  # another precision is another key
    assert len(stand_in.builds) == 4 and len(list(directory.glob("encoder-*.engine"))) == 2


def test_an_unparseable_export_is_a_clear_error(stand_in, ckpt_copy):
    ckpt = ckpt_copy()
    from dp_ros.runtime.export import export_onnx

    export_onnx(ckpt).denoiser.write_bytes(b"not onnx")
    with pytest.raises(RuntimeError, match=r"TensorRT could not parse .*denoiser.onnx: not a valid ONNX model"):
        _backend(ckpt)


def test_a_failed_build_stores_nothing(stand_in, ckpt_copy, monkeypatch):
    ckpt = ckpt_copy()
    monkeypatch.setattr(stand_in, "fail_builds", True)
    with pytest.raises(RuntimeError, match=r"TensorRT failed to build an engine from .*encoder.onnx"):
        _backend(ckpt)
    assert not list((ckpt / ".build" / "tensorrt").glob("*.engine"))


def test_an_unloadable_cached_engine_says_which_file(stand_in, ckpt_copy):
    ckpt = ckpt_copy()
    engine = _backend(ckpt).engine_files[1].path
    engine.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match=f"TensorRT could not load the engine {engine}; delete it"):
        _backend(ckpt)


def test_compile_command_builds_then_reuses(stand_in, ckpt_copy, tmp_path, monkeypatch, capsys):
    ckpt = ckpt_copy()
    assert cli_main(["compile", str(ckpt)]) == 2  # no CUDA device here
    assert "TensorRT is unavailable here: torch sees no CUDA device" in capsys.readouterr().err

    monkeypatch.setattr(trt_mod, "unavailable", lambda device: None)
    assert cli_main(["compile", str(ckpt), "--precision", "fp32"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [["encoder:", "built"], ["denoiser:", "built"]]
    assert cli_main(["compile", str(ckpt), "--precision", "fp32"]) == 0
    assert [line.split()[:2] for line in capsys.readouterr().out.splitlines()] == [
        ["encoder:", "reused"], ["denoiser:", "reused"]]

    monkeypatch.setattr(stand_in, "fail_builds", True)
    assert cli_main(["compile", str(ckpt)]) == 1  # fp16: a new key, and the build fails
    assert "dp_ros compile: TensorRT failed to build an engine from" in capsys.readouterr().err
    assert cli_main(["compile", str(tmp_path / "missing")]) == 1
    assert "dp_ros compile: checkpoint" in capsys.readouterr().err
