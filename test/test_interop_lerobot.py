"""LeRobot policies imported with output parity, against fixtures LeRobot itself computed
(scripts/interop/make_lerobot_fixtures.py; docs/interop.md)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from dp_ros.cli import main
from dp_ros.interop.common import InteropError
from dp_ros.interop.lerobot_policy import import_lerobot
from dp_ros.model.checkpoint import load_checkpoint

from interop_weights import fixture_windows, seeded_state

FIXTURES = Path(__file__).parent / "fixtures" / "interop" / "lerobot"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "io.npz").is_file())
TOL = 1e-4  # FP32 on the CPU (issue 18)


def policy_dir(case: str, tmp_path: Path) -> Path:
    """The fixture's policy directory, with model.safetensors rebuilt from the seed where the
    fixture keeps LeRobot's weight manifest instead of the file."""
    src = shutil.copytree(FIXTURES / case / "policy", tmp_path / case)
    manifest = FIXTURES / case / "weights_manifest.json"
    if manifest.is_file():
        meta = json.loads((FIXTURES / case / "meta.json").read_text())
        state = seeded_state(json.loads(manifest.read_text()), meta["seed"])
        stats = FIXTURES / case / "stats.safetensors"  # LeRobot < 0.4: statistics inside the weights file
        if stats.is_file():
            state.update(load_file(str(stats)))
        save_file(state, str(src / "model.safetensors"))
    return Path(src)


def windows(case: str, observation_map: dict):
    """The fixture's observations in dp_ros's layout, with noise and LeRobot's chunks."""
    return fixture_windows(FIXTURES / case / "io.npz", observation_map)


def imported(case: str, tmp_path: Path) -> Path:
    src = policy_dir(case, tmp_path)
    out = tmp_path / "imported"
    n = int(np.load(FIXTURES / case / "io.npz")["expected"].shape[-1])
    assert main(["import", "lerobot", str(src), "--out", str(out), "--fps", "10",
                 "--joint-names", ",".join(f"j{i}" for i in range(n))]) == 0
    return out


@pytest.mark.parametrize("case", CASES)
def test_imported_policy_matches_lerobot(case, tmp_path):
    policy = load_checkpoint(imported(case, tmp_path))
    assert policy.config.noise.timestep_spacing == "leading"
    worst = 0.0
    for obs, noise, expected in windows(case, policy.metadata["observation_map"]):
        got = policy.predict_chunk(obs, noise=noise)
        worst = max(worst, float(np.max(np.abs(got - expected))))
    print(f"{case}: max |dp_ros - LeRobot| = {worst:.2e}")
    assert worst < TOL


def test_onnxruntime_backend_matches_lerobot(tmp_path):
    """The imported policy through the exported ONNX Runtime backend (LeRobot's clip range
    1.5, the environment state's reordered features), against LeRobot's chunk. The state-only
    policy: exporting a ResNet-18 costs 20 s of the suite, and the encoder options are plain
    modules the exporter handles like any other."""
    from dp_ros.runtime.backends import load_runner

    from test_backends import FP32_TOL

    case = "state_only"
    ckpt = imported(case, tmp_path)
    runner = load_runner(ckpt, "onnxruntime", "cpu")
    assert runner.backend_name == "onnxruntime"
    steps = runner.config.noise.num_inference_steps
    for obs, noise, expected in windows(case, load_checkpoint(ckpt).metadata["observation_map"]):
        got = runner.predict(obs, steps, noise).actions
        assert np.max(np.abs(got - expected)) < FP32_TOL, np.max(np.abs(got - expected))


def test_what_the_node_needs_is_written_and_reported(tmp_path, capsys):
    src = policy_dir("image_shared_ddim", tmp_path)
    assert main(["import", "lerobot", str(src), "--out", str(tmp_path / "out"), "--fps", "15"]) == 0
    text = capsys.readouterr().out
    assert "observation.images.front -> front: parameter cameras.front.topic, 64x43 RGB" in text
    assert "observation.state -> joint_pos: /joint_states" in text
    assert "placeholder joint names" in text
    policy = load_checkpoint(tmp_path / "out")
    cfg = policy.config
    assert cfg.joint_names == ("joint_1", "joint_2", "joint_3", "joint_4") and cfg.dt == pytest.approx(1 / 15)
    assert [c.name for c in cfg.obs.cameras] == ["front", "wrist"] and cfg.vision.shared
    # LeRobot files the action sent at t: reached one period later, the node's default offset.
    assert cfg.action_time_offset == pytest.approx(1 / 15) and "action_time_offset to 0.06667 s" in text
    assert policy.metadata["placeholder_joint_names"] is True
    assert policy.metadata["imported_from"]["library"] == "lerobot"


def _edit_config(src: Path, **changes):
    cfg = json.loads((src / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (src / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("change,message", [
    (dict(vision_backbone="resnet34"), "vision_backbone = 'resnet34' is not supported"),
    (dict(beta_schedule="linear"), "beta_schedule = 'linear' is not supported"),
    (dict(resize_shape=[32, 32]), "resize_shape = [32, 32] is not supported"),
    (dict(type="act"), "type = 'act' is not supported"),
    (dict(some_new_field=1), "unknown fields ['some_new_field']"),
    (dict(input_features={"observation.state": {"type": "STATE", "shape": [2]},
                          "observation.velocity": {"type": "STATE", "shape": [2]}}),
     "input_features['observation.velocity']"),
])
def test_unsupported_configurations_are_refused_with_the_field(tmp_path, capsys, change, message):
    src = policy_dir("state_only", tmp_path)
    _edit_config(src, **change)
    out = tmp_path / "out"
    assert main(["import", "lerobot", str(src), "--out", str(out), "--fps", "10"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_corrupt_truncated_or_missing_files_write_nothing(tmp_path, capsys):
    src = policy_dir("state_only", tmp_path)
    weights = src / "model.safetensors"
    data = weights.read_bytes()
    out = tmp_path / "out"
    weights.write_bytes(data[: len(data) // 2])
    assert main(["import", "lerobot", str(src), "--out", str(out), "--fps", "10"]) == 2
    assert "could not be read (corrupt or truncated?)" in capsys.readouterr().err and not out.exists()
    weights.write_bytes(data)
    (src / "config.json").write_text("{not json")
    assert main(["import", "lerobot", str(src), "--out", str(out), "--fps", "10"]) == 2
    assert "is not valid JSON" in capsys.readouterr().err and not out.exists()
    src = policy_dir("image_shared_ddim", tmp_path / "b")
    for f in src.glob("policy_*"):
        f.unlink()
    assert main(["import", "lerobot", str(src), "--out", str(out), "--fps", "10"]) == 2
    assert "no normalization statistics" in capsys.readouterr().err and not out.exists()
    # A weights file of another architecture: the tensors are named, nothing is written.
    src = policy_dir("image_shared_ddim", tmp_path / "c")
    (src / "model.safetensors").write_bytes(data)  # the state-only policy's weights
    assert main(["import", "lerobot", str(src), "--out", str(out), "--fps", "10"]) == 2
    err = capsys.readouterr().err
    assert "the weights do not match the architecture its config describes" in err and "tensors missing" in err
    assert not out.exists()


def test_existing_output_and_bad_arguments_are_refused(tmp_path, capsys):
    src = policy_dir("state_only", tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["import", "lerobot", str(src), "--out", str(out), "--fps", "10"]) == 2
    assert "exists; choose a new directory" in capsys.readouterr().err
    assert main(["import", "lerobot", str(src), "--out", str(out), "--fps", "10", "--force"]) == 2
    assert "is not a checkpoint; refusing to replace it" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(InteropError, match="--joint-names gives 3 names, but .* has 2 action dimensions"):
        import_lerobot(src, 10.0, "a,b,c")
    with pytest.raises(InteropError, match="--fps 0.0 must be a positive number"):
        import_lerobot(src, 0.0)
