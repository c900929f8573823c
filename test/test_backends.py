"""Export, backends and their parity with PyTorch FP32 under the same initial noise."""
import json

import numpy as np
import onnx
import pytest
import torch

from dp_ros.model import build_policy, load_checkpoint, save_checkpoint
from dp_ros.model.presets import placeholder_normalizer
from dp_ros.runtime import export as export_mod
from dp_ros.runtime.backends import BACKENDS, BackendUnavailable, check_against_reference, load_runner
from dp_ros.runtime.export import export_onnx
from dp_ros.runtime.tensorrt_backend import cached_engine, engine_key

from model_helpers import FP16_TOL, FP32_TOL, J, example_guide, tiny_config, window
from model_helpers import diffusion_checkpoint as _ckpt, reference_chunk as _reference


def test_export_names_shapes_and_reuse(ckpt_copy, monkeypatch):
    ckpt = ckpt_copy()  # exported once for the session; the export travels with the copy
    r = export_onnx(ckpt)
    assert r.reused and r.encoder.parent == ckpt / ".build" / "onnx"
    enc, den = onnx.load(str(r.encoder)), onnx.load(str(r.denoiser))

    def io(model):
        def dims(v):
            return [d.dim_value for d in v.type.tensor_type.shape.dim]
        return ({i.name: dims(i) for i in model.graph.input}, {o.name: dims(o) for o in model.graph.output})

    ins, outs = io(enc)
    assert ins == {"image_left": [1, 2, 40, 48, 3], "image_right": [1, 2, 40, 48, 3], "state_joint_pos": [1, 2, J]}
    assert enc.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert list(outs) == ["cond"]
    ins, outs = io(den)
    x = [1, 8, J]  # the guidance inputs (seam mode inpaint) are part of the denoiser graph
    assert ins == {"sample": x, "timestep": [1], "cond": ins["cond"], "target": x, "mask": x, "noise": x,
                   "level": [2]}
    assert outs == {"model_output": x, "guided": x}
    # A changed checkpoint is exported again (the graphs themselves: the export above).
    exported = []
    monkeypatch.setattr(export_mod, "_export", lambda module, args, path, *names: (
        exported.append(type(module).__name__), path.write_bytes(b"onnx")))
    policy = load_checkpoint(ckpt)
    with torch.no_grad():
        next(policy.parameters()).add_(0.1)
    save_checkpoint(policy, ckpt)
    assert not export_onnx(ckpt).reused and exported == ["EncoderGraph", "DenoiserGraph"]
    assert export_onnx(ckpt).reused and len(exported) == 2
    # So is an export of an older graph version (before the guidance inputs).
    stamp = r.encoder.parent / "export.json"
    stamp.write_text(stamp.read_text().replace(f'"graph_version": {export_mod.GRAPH_VERSION}', '"graph_version": 1'))
    assert not export_onnx(ckpt).reused and len(exported) == 4


@pytest.mark.parametrize("denoiser,prediction", [("unet", "epsilon"), ("transformer", "epsilon"), ("unet", "sample")])
def test_onnxruntime_parity_with_pytorch_fp32(ckpt_copy, denoiser, prediction):
    ckpt = ckpt_copy(denoiser, prediction)
    runner = load_runner(ckpt, "onnxruntime", "cpu")
    obs = window(runner.config)
    noise = np.random.default_rng(1).standard_normal((8, J)).astype(np.float32)
    for steps in (1, 3, 10):
        got = runner.predict(obs, steps, noise).actions
        ref = _reference(ckpt, obs, noise, steps)
        assert got.shape == ref.shape == (8, J)
        assert np.max(np.abs(got - ref)) < FP32_TOL, (steps, np.max(np.abs(got - ref)))
    # Guided (seam mode inpaint) through the exported graph, against the same in PyTorch.
    guide = example_guide(8, J)
    got = runner.predict(obs, 10, noise, guide=guide).actions
    ref = _reference(ckpt, obs, noise, 10, guide)
    assert np.max(np.abs(got - ref)) < FP32_TOL, np.max(np.abs(got - ref))


def test_auto_and_explicit_backend_choice(ckpt_copy):
    ckpt = ckpt_copy()
    assert load_runner(ckpt, "auto", "cpu").backend_name == "onnxruntime"
    with pytest.raises(BackendUnavailable, match="backend 'tensorrt' is unavailable on cpu"):
        load_runner(ckpt, "tensorrt", "cpu")
    with pytest.raises(BackendUnavailable, match="backend 'cuda_graph' is unavailable on cpu"):
        load_runner(ckpt, "cuda_graph", "cpu")
    with pytest.raises(BackendUnavailable, match="unknown backend 'tvm'"):
        load_runner(ckpt, "tvm", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="no CUDA device"):
            load_runner(ckpt, "pytorch", "cuda")


def test_backend_options_apply_only_where_the_backend_takes_them(ckpt_copy, caplog):
    import logging

    ckpt = ckpt_copy()
    with caplog.at_level(logging.INFO, logger="dp_ros.runtime.backends"):
        runner = load_runner(ckpt, "onnxruntime", "cpu", compile=True)
    assert runner.backend_name == "onnxruntime"
    assert "option compile=True does not apply to backend onnxruntime; ignored" in caplog.text


def test_compile_option_values():
    from dp_ros.runtime.backends import compile_option

    assert [compile_option(v) for v in ("auto", "true", "false", True, False, " Auto ")] == [
        None, True, False, True, False, None]
    with pytest.raises(ValueError, match="torch_compile must be auto, true or false, not 'yes'"):
        compile_option("yes")


def test_regression_checkpoints_run_on_pytorch_only(tmp_path):
    import dataclasses

    cfg = dataclasses.replace(tiny_config(), head="regression").validate()
    ckpt = save_checkpoint(build_policy(cfg, placeholder_normalizer(cfg)), tmp_path / "reg")
    runner = load_runner(ckpt, "auto", "cpu")
    assert runner.backend_name == "pytorch"
    assert runner.predict(window(cfg)).actions.shape == (cfg.horizon, J)
    with pytest.raises(BackendUnavailable, match="diffusion policies only.*'regression': use pytorch"):
        load_runner(ckpt, "onnxruntime", "cpu")


def test_engine_key_covers_what_makes_an_engine_valid():
    base = dict(gpu="NVIDIA H100", compute_capability="9.0", trt_version="10.13", precision="fp16",
                shapes={"sample": (1, 16, 7)}, checkpoint_hash="abc")
    key, desc = engine_key(**base)
    assert desc["checkpoint"] == "abc" and desc["shapes"] == {"sample": [1, 16, 7]}
    for field, other in [("gpu", "NVIDIA L4"), ("compute_capability", "8.9"), ("trt_version", "10.14"),
                         ("precision", "fp32"), ("shapes", {"sample": (1, 32, 7)}), ("checkpoint_hash", "abd")]:
        assert engine_key(**dict(base, **{field: other}))[0] != key, field
    with pytest.raises(ValueError, match="precision 'int8'"):
        engine_key(**dict(base, precision="int8"))


def test_engine_cache_builds_once_and_rebuilds_on_a_new_key(tmp_path):
    builds = []

    def build():
        builds.append(1)
        return b"engine-%d" % len(builds)

    key, desc = engine_key("gpu", "9.0", "10", "fp16", {"x": (1,)}, "h1")
    assert cached_engine(tmp_path, "denoiser", key, desc, build) == (b"engine-1", False)
    assert cached_engine(tmp_path, "denoiser", key, desc, build) == (b"engine-1", True)
    assert len(builds) == 1
    key2, desc2 = engine_key("gpu", "9.0", "10", "fp16", {"x": (1,)}, "h2")
    assert cached_engine(tmp_path, "denoiser", key2, desc2, build) == (b"engine-2", False)
    # A description file that does not match (for example edited or stale) forces a rebuild.
    (tmp_path / f"denoiser-{key}.json").write_text(json.dumps(dict(desc, tensorrt="9")))
    assert cached_engine(tmp_path, "denoiser", key, desc, build) == (b"engine-3", False)


def test_build_dir_falls_back_to_the_cache_when_read_only(tmp_path, monkeypatch):
    ckpt = _ckpt(tmp_path)
    real_mkdir = export_mod.Path.mkdir

    def mkdir(self, *a, **k):
        if self.name == ".build":
            raise PermissionError("read-only")
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(export_mod.Path, "mkdir", mkdir)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    d = export_mod.build_dir(ckpt)
    assert d.parent == tmp_path / "cache" / "dp_ros" / "builds" and d.is_dir()


def _gpu_backend_reason(name):
    return BACKENDS[name][0]("cuda")


GPU_CASES = [  # (backend, constructor options, tolerance)
    ("cuda_graph", {"compile": False}, FP16_TOL),
    ("cuda_graph", {"compile": True}, FP16_TOL),
    ("cuda_graph", {"half": False, "compile": False}, FP32_TOL),
    ("tensorrt", {}, FP16_TOL),
    ("pytorch", {}, FP32_TOL),
]


@pytest.mark.parametrize("name,options,tol", GPU_CASES, ids=lambda v: str(v) if not isinstance(v, float) else "")
@pytest.mark.parametrize("denoiser,prediction", [("unet", "epsilon"), ("transformer", "epsilon"), ("unet", "sample")])
def test_gpu_backend_parity(ckpt_copy, name, options, tol, denoiser, prediction):
    why = _gpu_backend_reason(name)
    if why is None and options.get("compile"):
        from dp_ros.runtime.cuda_graph_backend import compile_unavailable

        why = compile_unavailable()
    if why:
        pytest.skip(f"{name} on cuda: {why}")
    ckpt = ckpt_copy(denoiser, prediction)
    runner = load_runner(ckpt, name, "cuda", **options)
    obs = window(runner.config)
    noise = np.random.default_rng(2).standard_normal((8, J)).astype(np.float32)
    for steps in (1, 10):
        got = runner.predict(obs, steps, noise).actions
        diff = np.max(np.abs(got - _reference(ckpt, obs, noise, steps)))
        assert diff < tol, (steps, diff)
    # Guided (seam mode inpaint) on the backend's own path (cuda_graph: captured on static
    # buffers), against the same in PyTorch; then a free chunk again: the guide does not stick.
    guide = example_guide(8, J)
    for steps in (1, 10):
        diff = np.max(np.abs(runner.predict(obs, steps, noise, guide=guide).actions -
                             _reference(ckpt, obs, noise, steps, guide)))
        assert diff < tol, ("guided", steps, diff)
    assert np.max(np.abs(runner.predict(obs, 10, noise).actions - got)) < 1e-6
    check_against_reference(runner, 0.02)  # the node's start-up verification, at its default tolerance
    # Replays are deterministic for a given noise.
    assert np.array_equal(runner.predict(obs, 10, noise).actions, runner.predict(obs, 10, noise).actions)
    # A new observation and new noise change the chunk (the static buffers are really re-read).
    other = window(runner.config, np.random.default_rng(5))
    assert not np.allclose(runner.predict(other, 10, noise).actions, got)
    assert not np.allclose(runner.predict(obs, 10, noise[::-1].copy()).actions, got)


def test_tensorrt_fp32_parity(ckpt_copy):
    why = _gpu_backend_reason("tensorrt")
    if why:
        pytest.skip(f"tensorrt on cuda: {why}")
    from dp_ros.runtime.tensorrt_backend import TensorRTBackend

    ckpt = ckpt_copy()
    backend = TensorRTBackend(load_checkpoint(ckpt), "cuda", ckpt, precision="fp32")
    obs = window(load_checkpoint(ckpt).config)
    noise = np.random.default_rng(3).standard_normal((8, J)).astype(np.float32)
    assert np.max(np.abs(backend.predict(obs, 10, noise) - _reference(ckpt, obs, noise, 10))) < 1e-3


def test_unet_films_for_all_steps_match_the_plain_forward():
    """The GPU backend computes every block's FiLM for all K steps in one batch."""
    from dp_ros.model.unet1d import ConditionalUnet1D
    from dp_ros.model.config import UNetConfig

    torch.manual_seed(0)
    unet = ConditionalUnet1D(3, 10, UNetConfig(down_dims=(16, 32, 64), step_embed_dim=16)).eval()
    steps = torch.tensor([90, 50, 10])
    cond = torch.randn(1, 10)
    x = torch.randn(1, 8, 3)
    with torch.no_grad():
        films = unet.films(steps, cond.expand(3, -1))
        assert len(films) == len(unet.res_blocks()) == 12  # 3 down x 2, 2 mid, 2 up x 2
        for i, k in enumerate(steps):
            plain = unet(x, k.expand(1), cond)
            given = unet(x, None, None, films=[f[i:i + 1] for f in films])
            assert torch.allclose(plain, given, atol=1e-6)


def test_pytorch_backend_uses_plain_fp32_and_restores_the_flags():
    from dp_ros.runtime.backends import ieee_fp32

    torch.backends.cudnn.allow_tf32 = True
    with ieee_fp32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.allow_tf32


def test_compile_without_triton_is_a_clear_error(tmp_path, monkeypatch):
    from dp_ros.runtime import cuda_graph_backend as cg

    monkeypatch.setattr(cg, "compile_unavailable", lambda: "torch.compile needs Triton (test)")
    policy = load_checkpoint(_ckpt(tmp_path))
    with pytest.raises(BackendUnavailable, match=r"compile requested, but torch.compile needs Triton \(test\)"):
        cg.CudaGraphBackend(policy, "cpu", compile=True)


class _Offset:
    """Wraps a backend and moves one joint of every chunk (or makes it NaN)."""

    def __init__(self, inner, joint, delta):
        self.inner, self.joint, self.delta = inner, joint, delta

    def predict(self, obs, steps, noise=None, guide=None):
        out = np.array(self.inner.predict(obs, steps, noise, guide))
        out[:, self.joint] += self.delta
        return out


def test_reference_check_passes_a_good_backend_and_refuses_a_wrong_one(ckpt_copy):
    from dp_ros.runtime.backends import BackendMismatch, check_against_reference

    ckpt = ckpt_copy()
    runner = load_runner(ckpt, "onnxruntime", "cpu")
    check = check_against_reference(runner, 0.02)
    assert 0 <= check.max_diff < FP32_TOL and check.tolerance == 0.02 and check.seconds > 0
    assert check_against_reference(load_runner(ckpt, "pytorch", "cpu"), 0.02) is None  # the reference itself

    stats = placeholder_normalizer(runner.config).stats["action"]
    span = stats.max[1] - stats.min[1]
    runner.backend = _Offset(runner.backend, 1, 0.1 * span)  # 10% of joint b's range
    with pytest.raises(BackendMismatch, match=r"backend 'onnxruntime' on cpu does not reproduce the PyTorch FP32 "
                                              r"reference: its chunk differs by 0\.1 of the training range of "
                                              r"joint 'b' \(tolerance 0\.02\); use another backend"):
        check_against_reference(runner, 0.02)
    assert check_against_reference(runner, 0.2).max_diff == pytest.approx(0.1, abs=1e-4)
    runner.backend = _Offset(runner.backend.inner, 2, np.nan)
    with pytest.raises(BackendMismatch, match="NaN or infinite values \\(joint 'c'\\)"):
        check_against_reference(runner, 0.5)
    with pytest.raises(ValueError, match="tolerance must be > 0"):
        check_against_reference(runner, 0.0)


@pytest.mark.parametrize("name", ["cuda_graph", "tensorrt"])
def test_graph_backends_prepare_step_counts_outside_the_loop(ckpt_copy, name):
    """Issue 14.11: prepare() captures a step count's graph; running it then captures nothing."""
    why = _gpu_backend_reason(name)
    if why:
        pytest.skip(f"{name} on cuda: {why}")
    runner = load_runner(ckpt_copy(), name, "cuda", **({"compile": False} if name == "cuda_graph" else {}))
    assert runner.needs_prepare and runner.unprepared(3)
    assert runner.prepare(3) > 0 and runner.unprepared(3) is None
    graphs = dict(runner.backend._graphs)
    assert 3 in graphs
    runner.predict(window(runner.config), 3)
    assert runner.backend._graphs == graphs  # nothing captured on the way


def test_cpu_backends_need_no_preparation(tmp_path):
    runner = load_runner(_ckpt(tmp_path), "pytorch", "cpu")
    assert not runner.needs_prepare and runner.unprepared(7) is None and runner.prepare(7) < 1.0
