"""Reference diffusion_policy checkpoints imported with output parity, against fixtures the
reference code computed (scripts/interop/make_reference_fixtures.py; docs/interop.md)."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from dp_ros.cli import main
from dp_ros.model.checkpoint import load_checkpoint

from interop_weights import fixture_windows, restore_stripped_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "interop" / "reference"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "io.npz").is_file())
TOL = 1e-4  # FP32 on the CPU (issue 18)


def checkpoint(case: str, tmp_path: Path) -> Path:
    """The fixture's .ckpt, with the ResNet storages written back where they were cut out."""
    out = tmp_path / f"{case}.ckpt"
    if (FIXTURES / case / "storages.json").is_file():
        return restore_stripped_checkpoint(FIXTURES / case, out)
    return Path(shutil.copy(FIXTURES / case / "latest.ckpt", out))


def windows(case: str, observation_map: dict, expected: str = "expected"):
    return fixture_windows(FIXTURES / case / "io.npz", observation_map, expected)


@pytest.mark.parametrize("case,ema", [(c, True) for c in CASES] + [("lowdim", False)])
def test_imported_policy_matches_the_reference(case, ema, tmp_path):
    """EMA weights by default; --no-ema takes the trained ones (checked on the cheapest case)."""
    out = tmp_path / "imported"
    args = ["import", "diffusion-policy", str(checkpoint(case, tmp_path)), "--out", str(out), "--fps", "10"]
    assert main(args + ([] if ema else ["--no-ema"])) == 0
    policy = load_checkpoint(out)
    assert policy.metadata["imported_from"]["weights"] == ("ema_model" if ema else "model")
    worst = 0.0
    for obs, noise, expected in windows(case, policy.metadata["observation_map"],
                                        "expected" if ema else "expected_no_ema"):
        got = policy.predict_chunk(obs, noise=noise)
        worst = max(worst, float(np.max(np.abs(got - expected))))
    print(f"{case} ({'EMA' if ema else 'trained'} weights): max |dp_ros - reference| = {worst:.2e}")
    assert worst < TOL


def test_the_report_names_what_to_map(tmp_path, capsys):
    out = tmp_path / "imported"
    assert main(["import", "diffusion-policy", str(checkpoint("hybrid_image", tmp_path)), "--out", str(out),
                 "--fps", "10", "--joint-names", "x,y"]) == 0
    text = capsys.readouterr().out
    assert "weights: ema_model" in text
    assert "image -> image: parameter cameras.image.topic, 48x43 RGB" in text
    assert "agent_pos -> joint_pos: /joint_states" in text and "placeholder" not in text
    policy = load_checkpoint(out)
    assert policy.config.joint_names == ("x", "y") and policy.config.vision.feature_activation == "relu"
    # The low-dim policy's one observation vector is not the joint positions: said, and written as 'obs'.
    assert main(["import", "diffusion-policy", str(checkpoint("lowdim", tmp_path)), "--out",
                 str(tmp_path / "low"), "--fps", "10"]) == 0
    assert "runs offline (predict_chunk) but not on the node" in capsys.readouterr().out
    assert [k.name for k in load_checkpoint(tmp_path / "low").config.obs.lowdim] == ["obs"]


def test_a_malicious_pickle_runs_nothing_and_is_refused(tmp_path, capsys):
    """A .ckpt whose pickle would call os.system on load (any torch.load without
    weights_only would run it) is read as data: nothing runs, nothing is written."""
    import os

    import torch

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt = tmp_path / "evil.ckpt"
    torch.save({"cfg": Evil(), "state_dicts": {"model": {}}}, ckpt)
    out = tmp_path / "out"
    assert main(["import", "diffusion-policy", str(ckpt), "--out", str(out), "--fps", "10"]) == 2
    assert "system this importer cannot read" in capsys.readouterr().err
    assert not marker.exists() and not out.exists()


def test_truncated_unsupported_and_non_checkpoint_files_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    # The fixture as committed: its ResNet storages are missing, as in a truncated download.
    assert main(["import", "diffusion-policy", str(FIXTURES / "hybrid_image" / "latest.ckpt"), "--out", str(out),
                 "--fps", "10"]) == 2
    assert "could not be read as a PyTorch checkpoint" in capsys.readouterr().err
    ckpt = checkpoint("lowdim", tmp_path)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 3])
    assert main(["import", "diffusion-policy", str(ckpt), "--out", str(out), "--fps", "10"]) == 2
    assert "could not be read as a PyTorch checkpoint" in capsys.readouterr().err
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    assert main(["import", "diffusion-policy", str(text), "--out", str(out), "--fps", "10"]) == 2
    assert "could not be read" in capsys.readouterr().err
    assert not out.exists()


def _edited(case: str, tmp_path: Path, edit) -> Path:
    """The fixture with its config changed: the config tree rewritten through torch.save
    of plain data (the importer reads plain dicts the same way as OmegaConf trees)."""
    import torch

    from dp_ros.interop.reference_policy import plain
    from dp_ros.interop.safe_pickle import load_restricted

    payload = load_restricted(checkpoint(case, tmp_path))
    cfg = plain(payload["cfg"])
    edit(cfg)
    path = tmp_path / f"{case}-edited.ckpt"
    torch.save({"cfg": cfg, "state_dicts": payload["state_dicts"]}, path)
    return path


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["policy"].update(_target_="diffusion_policy.policy.diffusion_transformer_hybrid_image_policy."
                                          "DiffusionTransformerHybridImagePolicy"),
     "policy._target_ = 'diffusion_policy.policy.diffusion_transformer_hybrid_image_policy"),
    (lambda c: c["policy"].update(eval_fixed_crop=False), "policy.eval_fixed_crop = False is not supported"),
    (lambda c: c["policy"]["noise_scheduler"].update(beta_schedule="linear"),
     "policy.noise_scheduler.beta_schedule = 'linear' is not supported"),
    (lambda c: c["policy"].update(obs_as_global_cond=False), "policy.obs_as_global_cond = False is not supported"),
    (lambda c: c["policy"].update(horizon="${no_such_key}"), "refers to ${no_such_key}"),
])
def test_unsupported_configurations_are_refused_with_the_field(tmp_path, capsys, edit, message):
    ckpt = _edited("hybrid_image", tmp_path, edit)
    out = tmp_path / "out"
    assert main(["import", "diffusion-policy", str(ckpt), "--out", str(out), "--fps", "10"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
