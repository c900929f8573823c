"""Checkpoint directories: exact round trips and clear errors."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from dp_ros.model import CheckpointError, build_policy, checkpoint_hash, load_checkpoint, save_checkpoint
from dp_ros.model.presets import placeholder_normalizer

from model_helpers import tiny_config, window


@pytest.fixture
def policy():
    torch.manual_seed(0)
    cfg = tiny_config()
    return build_policy(cfg, placeholder_normalizer(cfg))


def test_roundtrip_is_exact(tmp_path, policy):
    path = save_checkpoint(policy, tmp_path / "ckpt", metadata={"task": "toy"})
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_checkpoint(path)
    assert loaded.config == policy.config
    assert loaded.metadata == {"task": "toy"}
    a, b = policy.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    obs = window(policy.config)
    noise = torch.randn(policy.config.horizon, 3)
    assert np.array_equal(policy.predict_chunk(obs, noise=noise), loaded.predict_chunk(obs, noise=noise))
    # The config carries what the node checks against: dt, names, sizes, statistics.
    raw = json.loads((path / "config.json").read_text())
    assert raw["format_version"] == 1 and raw["policy"]["dt"] == 0.1
    assert raw["policy"]["joint_names"] == ["a", "b", "c"]
    assert [c["name"] for c in raw["policy"]["obs"]["cameras"]] == ["left", "right"]
    assert set(raw["normalizer"]) == {"action", "joint_pos"}


def test_overwrite_and_hash(tmp_path, policy):
    path = save_checkpoint(policy, tmp_path / "ckpt")
    h1 = checkpoint_hash(path)
    with torch.no_grad():
        next(policy.parameters()).add_(1.0)
    save_checkpoint(policy, path)
    assert checkpoint_hash(path) != h1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary leftovers"


def test_refuses_to_overwrite_other_directories(tmp_path, policy):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not a checkpoint; refusing"):
        save_checkpoint(policy, tmp_path / "data")


def test_missing_files(tmp_path, policy):
    with pytest.raises(CheckpointError, match="is not a directory"):
        load_checkpoint(tmp_path / "nope")
    path = save_checkpoint(policy, tmp_path / "ckpt")
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        load_checkpoint(path)
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="has no config.json"):
        load_checkpoint(path)


def test_unknown_format_version_and_bad_json(tmp_path, policy):
    path = save_checkpoint(policy, tmp_path / "ckpt")
    raw = json.loads((path / "config.json").read_text())
    raw["format_version"] = 99
    (path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="format_version 99; this dp_ros reads version 1"):
        load_checkpoint(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)


def test_invalid_config_in_checkpoint(tmp_path, policy):
    path = save_checkpoint(policy, tmp_path / "ckpt")
    raw = json.loads((path / "config.json").read_text())
    raw["policy"]["n_action_steps"] = 50
    (path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="n_action_steps \\(T_a\\) 50 must be in"):
        load_checkpoint(path)


def test_shape_mismatch_and_missing_tensors(tmp_path, policy):
    path = save_checkpoint(policy, tmp_path / "ckpt")
    state = load_file(str(path / "model.safetensors"))
    key = next(k for k in state if k.endswith("final_conv.1.weight"))
    state[key] = torch.zeros(5, 5, 1)
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="shape mismatch in 1 tensors"):
        load_checkpoint(path)
    del state[key]
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing 1 tensors"):
        load_checkpoint(path)


def test_corrupt_weights(tmp_path, policy):
    path = save_checkpoint(policy, tmp_path / "ckpt")
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_checkpoint(path)


def test_float16_weights_halve_the_file_and_load_as_float32(tmp_path, policy):
    full = save_checkpoint(policy, tmp_path / "fp32")
    half = save_checkpoint(policy, tmp_path / "fp16", weights_dtype="float16")
    size = lambda p: (p / "model.safetensors").stat().st_size  # noqa: E731
    assert size(half) < 0.55 * size(full)
    loaded = load_checkpoint(half)
    assert all(v.dtype == torch.float32 for v in loaded.state_dict().values() if v.is_floating_point())
    obs = window(policy.config)
    noise = torch.randn(policy.config.horizon, 3)
    a, b = policy.predict_chunk(obs, noise=noise), loaded.predict_chunk(obs, noise=noise)
    assert np.max(np.abs(a - b)) < 2e-2  # float16 rounding of the weights, in joint units
    with pytest.raises(CheckpointError, match="weights_dtype 'int8'"):
        save_checkpoint(policy, tmp_path / "bad", weights_dtype="int8")
    raw = json.loads((half / "config.json").read_text())
    assert raw["weights_dtype"] == "float16"
    raw["weights_dtype"] = "bfloat13"
    (half / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="weights_dtype 'bfloat13'"):
        load_checkpoint(half)
