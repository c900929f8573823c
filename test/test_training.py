"""dp_ros train on generated datasets: checkpoints load, resume is exact, loss falls."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from dp_ros.cli import main
from dp_ros.dataset.store import DatasetError, EpisodeStore
from dp_ros.model import load_checkpoint
from dp_ros.training.trainer import TrainConfig, load_run_config, train

ROOT = Path(__file__).resolve().parents[1]
J = 2


def make_dataset(path, episodes=6, length=30, camera=None, seed=0):
    """Actions follow the joints: a = 0.5 * q + 0.1 (learnable); q wanders per episode."""
    rng = np.random.default_rng(seed)
    cams = {"cam": camera} if camera else {}
    store = EpisodeStore.create(path, ["j1", "j2"], cams, 0.1)
    for e in range(episodes):
        w = store.begin_episode()
        q = rng.uniform(-1, 1, J)
        for i in range(length):
            q = np.clip(q + rng.normal(0, 0.05, J), -1, 1)
            images = {"cam": np.full((*camera, 3), (e * 40 + i) % 256, np.uint8)} if camera else {}
            w.add(100.0 + e * 10 + i * 0.1, q, 0.5 * q + 0.1, images)
        w.commit()
    store.close()
    return path


def write_config(path, **training):
    model = {"horizon": 8, "n_action_steps": 4, "unet": {"down_dims": [16, 32], "step_embed_dim": 16},
             "vision": {"num_keypoints": 4, "feature_dim": 8}}
    base = dict(steps=6, batch_size=8, warmup_steps=2, val_every=3, val_batches=1, checkpoint_every=3,
                num_workers=0, lr=1e-3)
    base.update(training)
    path.write_text(yaml.safe_dump({"model": model, "training": base}))
    return path


def test_a_few_steps_make_a_checkpoint_the_policy_loads(tmp_path):
    data = make_dataset(tmp_path / "d", camera=(40, 48))
    final = train(data, tmp_path / "run", write_config(tmp_path / "c.yaml"), progress=False)
    policy = load_checkpoint(final)
    assert policy.config.joint_names == ("j1", "j2") and policy.config.obs.cameras[0].crop_height == 36
    obs = {"cam": np.zeros((2, 40, 48, 3), np.uint8), "joint_pos": np.zeros((2, J))}
    assert policy.predict_chunk(obs).shape == (8, J)
    run = tmp_path / "run"
    assert (run / "loss.png").is_file() and (run / "config.yaml").is_file()
    hist = json.loads((run / "history.json").read_text())
    assert hist["step"] == list(range(1, 7)) and len(hist["val_loss"]) == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000003", "step_0000006"]
    meta = json.loads((final / "config.json").read_text())["metadata"]
    assert meta["steps"] == 6 and set(meta["train_episodes"]).isdisjoint(meta["val_episodes"])


def test_resume_continues_exactly(tmp_path):
    data = make_dataset(tmp_path / "d")
    cfg = write_config(tmp_path / "c.yaml")
    full = train(data, tmp_path / "full", cfg, progress=False)
    interrupted = tmp_path / "cut"
    train(data, interrupted, cfg, stop_at=3, progress=False)
    assert not (interrupted / "model").exists()
    state = json.loads((interrupted / "checkpoints" / "step_0000003" / "train_state" / "state.json").read_text())
    assert state["step"] == 3
    resumed = train(data, interrupted, cfg, resume=True, progress=False)
    for name in ("model.safetensors",):
        a, b = load_file(str(full / name)), load_file(str(resumed / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "EMA weights differ"
    a = load_file(str(tmp_path / "full/checkpoints/step_0000006/train_state/optimizer.safetensors"))
    b = load_file(str(interrupted / "checkpoints/step_0000006/train_state/optimizer.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "optimizer state differs"
    hist = json.loads((interrupted / "history.json").read_text())
    assert hist["step"] == list(range(1, 7))


def test_loss_falls_on_a_learnable_dataset(tmp_path):
    data = make_dataset(tmp_path / "d", episodes=8, length=40)
    cfg = write_config(tmp_path / "c.yaml", steps=150, batch_size=32, warmup_steps=10, val_every=150,
                       checkpoint_every=150, lr=3e-3)
    train(data, tmp_path / "run", cfg, progress=False)
    loss = json.loads((tmp_path / "run" / "history.json").read_text())["loss"]
    first, last = np.mean(loss[:20]), np.mean(loss[-20:])
    assert last < 0.5 * first, (first, last)


def test_bad_datasets_give_clear_errors(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    EpisodeStore.create(tmp_path / "empty", ["j1", "j2"], {}, 0.1).close()
    with pytest.raises(DatasetError, match="no episodes"):
        train(tmp_path / "empty", tmp_path / "r1", cfg, progress=False)
    short = make_dataset(tmp_path / "short", episodes=2, length=2)
    with pytest.raises(DatasetError, match="too short for one training window"):
        train(short, tmp_path / "r2", cfg, progress=False)
    small = make_dataset(tmp_path / "small", episodes=2, length=12, camera=(20, 24))
    with pytest.raises(ValueError, match="too small|larger than the image"):
        train(small, tmp_path / "r3", cfg, progress=False)
    with pytest.raises(DatasetError):
        train(tmp_path / "missing", tmp_path / "r4", cfg, progress=False)
    data = make_dataset(tmp_path / "d", episodes=3)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(FileExistsError, match="--resume"):
        train(data, tmp_path / "busy", cfg, progress=False)


def test_config_file_documents_every_option():
    model, training = load_run_config(ROOT / "config" / "train.yaml")
    assert training == TrainConfig()  # the file lists the defaults
    raw = yaml.safe_load((ROOT / "config" / "train.yaml").read_text())
    assert set(raw["training"]) == set(TrainConfig.__dataclass_fields__)


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"training": {"stepz": 3}}))
    with pytest.raises(ValueError, match="unknown keys \\['stepz'\\]"):
        load_run_config(bad)
    bad.write_text(yaml.safe_dump({"model": {"horizon": 8, "depth": 3}}))
    with pytest.raises(ValueError, match="unknown model keys \\['depth'\\]"):
        load_run_config(bad)


def test_cli_train(tmp_path, capsys):
    data = make_dataset(tmp_path / "d", episodes=3)
    cfg = write_config(tmp_path / "c.yaml", steps=2, checkpoint_every=2, val_every=2)
    assert main(["train", "--dataset", str(data), "--config", str(cfg), "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0
    assert "model:" in capsys.readouterr().out
    assert main(["train", "--dataset", str(tmp_path / "nope"), "--config", str(cfg), "--out",
                 str(tmp_path / "r2"), "--no-progress"]) == 2


@pytest.mark.slow
def test_torchrun_two_processes_on_the_cpu(tmp_path):
    """DistributedDataParallel through torchrun (gloo on the CPU): the documented multi-GPU path."""
    import subprocess
    import sys

    data = make_dataset(tmp_path / "d", episodes=4)
    cfg = write_config(tmp_path / "c.yaml", steps=4, checkpoint_every=2, val_every=2)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "dp_ros.cli", "train", "--dataset", str(data), "--config", str(cfg),
                           "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("model:") == 1  # only rank 0 reports
    policy = load_checkpoint(out / "model")
    assert json.loads((out / "model" / "config.json").read_text())["metadata"]["steps"] == 4
    assert policy.config.action_dim == J
