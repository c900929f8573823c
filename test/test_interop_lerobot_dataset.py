"""LeRobot v3.0 datasets both ways: a dataset LeRobot itself wrote
(scripts/interop/make_lerobot_dataset_fixture.py) imports with its values and frames, an
export has LeRobot's layout and comes back unchanged, and bad input writes nothing."""
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from dp_ros.cli import main
from dp_ros.dataset.store import EpisodeStore
from dp_ros.interop.lerobot_export import export_lerobot
from dp_ros.interop.lerobot_format import LeRobotDatasetError, psnr
from dp_ros.interop.lerobot_import import import_lerobot

FIXTURE = Path(__file__).parent / "fixtures" / "interop" / "lerobot_dataset"
LEROBOT = FIXTURE / "dataset"
MIN_PSNR = 30.0  # dB, AV1 at LeRobot's crf 30 on the fixture's small frames (measured 33.6 and 36.7)


@pytest.fixture(scope="module")
def source():
    return dict(np.load(FIXTURE / "frames.npz"))


def episodes(path):
    with EpisodeStore.open(path) as store:
        return store, [store.episode(i) for i in range(store.n_episodes)]


def cat(eps, key):
    return np.concatenate([e[key] for e in eps])


def mean_psnr(a, b):
    return float(np.mean([psnr(x, y) for x, y in zip(a, b)]))


def no_leftovers(parent: Path):
    return not [p.name for p in parent.iterdir() if p.name.endswith((".partial", ".old", ".creating"))]


def test_a_dataset_lerobot_wrote_imports_with_its_frames(tmp_path, source):
    result = import_lerobot(LEROBOT, tmp_path / "d")
    store, eps = episodes(tmp_path / "d")
    assert store.joint_names == ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "gripper")
    assert store.camera_names == ("front", "wrist") and store.image_shapes == {"front": (48, 64), "wrist": (32, 40)}
    assert store.state_dims == {"environment_state": 3} and store.dt == pytest.approx(0.1)
    assert list(store.episode_ends) == list(np.cumsum(source["lengths"]))
    np.testing.assert_array_equal(cat(eps, "joint_pos"), source["state"])
    np.testing.assert_array_equal(cat(eps, "environment_state"), source["env"])
    for e in eps:  # LeRobot's timestamps: seconds from the episode's start
        np.testing.assert_allclose(e["timestamp"], np.arange(len(e["timestamp"])) * 0.1, atol=1e-6)
    # --actions sent: the action of row t is the one LeRobot sent at t - 1; row 0 holds the start.
    starts = np.concatenate([[0], np.cumsum(source["lengths"])[:-1]])
    for e, a in zip(eps, starts):
        n = len(e["action"])
        np.testing.assert_array_equal(e["action"][1:], source["action"][a:a + n - 1])
        np.testing.assert_array_equal(e["action"][0], source["state"][a])
    front = mean_psnr(cat(eps, "front"), source["image_front"])
    wrist = mean_psnr(cat(eps, "wrist"), source["image_wrist"])
    print(f"\nimported LeRobot frames: PSNR front {front:.1f} dB, wrist {wrist:.1f} dB")
    assert front > MIN_PSNR and wrist > MIN_PSNR
    assert store.task["description"] == "pick the cube; push the cube left"
    assert store.task["lerobot"]["tasks"] == ["pick the cube", "push the cube left"]
    assert any("shoulder_pan" in line for line in result.lines)


def test_import_options_target_actions_size_and_ignore(tmp_path, source):
    import_lerobot(LEROBOT, tmp_path / "d", actions="target", size=(24, 32), ignore=["observation.environment_state"],
                   joint_names="a,b,c,d,e")
    store, eps = episodes(tmp_path / "d")
    np.testing.assert_array_equal(cat(eps, "action"), source["action"])
    assert store.image_shapes == {"front": (24, 32), "wrist": (24, 32)} and store.state_dims == {}
    assert store.joint_names == ("a", "b", "c", "d", "e")
    with pytest.raises(LeRobotDatasetError, match="--joint-names gives 2 names; action has 5"):
        import_lerobot(LEROBOT, tmp_path / "e", joint_names="a,b")
    assert not (tmp_path / "e").exists()


def test_images_stored_in_the_parquet_files_import_losslessly(tmp_path):
    source = np.load(FIXTURE / "frames_images.npz")
    import_lerobot(FIXTURE / "dataset_images", tmp_path / "d", actions="target")
    store, eps = episodes(tmp_path / "d")
    assert store.camera_names == ("image",) and store.joint_names == ("a", "b") and store.dt == pytest.approx(0.2)
    np.testing.assert_array_equal(cat(eps, "image"), source["image"])  # PNG: exact
    np.testing.assert_array_equal(cat(eps, "joint_pos"), source["state"].astype(np.float32))
    np.testing.assert_array_equal(cat(eps, "action"), source["action"].astype(np.float32))


def test_an_imported_dataset_trains(tmp_path):
    from dp_ros.model import load_checkpoint
    from dp_ros.training.trainer import train

    import_lerobot(LEROBOT, tmp_path / "d", size=(32, 40))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"horizon": 8, "n_action_steps": 4, "unet": {"down_dims": [16, 32], "step_embed_dim": 16},
                  "vision": {"num_keypoints": 4, "feature_dim": 8}},
        "training": {"steps": 2, "batch_size": 4, "warmup_steps": 1, "val_every": 2, "val_batches": 1,
                     "checkpoint_every": 2, "num_workers": 0, "lr": 1e-3}}))
    policy = load_checkpoint(train(tmp_path / "d", tmp_path / "run", cfg, progress=False))
    assert [c.name for c in policy.config.obs.cameras] == ["front", "wrist"]
    assert policy.config.joint_names[0] == "shoulder_pan" and abs(policy.config.dt - 0.1) < 1e-9


def make_store(path, lengths=(12, 7, 9), size=(48, 64), dt=0.1, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[0], 0:size[1]]
    with EpisodeStore.create(path, ["j1", "j2", "j3"], {"front": size, "wrist": (32, 40)}, dt,
                             task={"description": "reach the left target", "operator": "sim"},
                             states={"environment_state": 3, "cube": 2}) as store:
        for e, n in enumerate(lengths):
            w = store.begin_episode()
            for k in range(n):
                img = np.stack([x * 3 + k * 5, y * 4, np.full_like(x, 100 + e * 30)], -1).clip(0, 255).astype(np.uint8)
                w.add(1.7e9 + e * 10 + k * dt + rng.normal(0, 0.002), rng.normal(0, 1, 3), rng.normal(0, 1, 3),
                      {"front": img, "wrist": img[:32, :40]},
                      states={"environment_state": rng.normal(0, 1, 3), "cube": rng.normal(0, 1, 2)})
            w.commit()
    return path


def schema(path):
    return {f.name: str(f.type) for f in pq.read_schema(path)}


def test_an_export_has_the_layout_lerobot_writes(tmp_path):
    out = tmp_path / "lr"
    result = export_lerobot(make_store(tmp_path / "d"), out, "me/reach", robot_type="sim_arm")
    ours, theirs = (json.loads((p / "meta" / "info.json").read_text()) for p in (out, LEROBOT))
    assert set(ours) - {"dp_ros"} == set(theirs) and ours["codebase_version"] == "v3.0"
    rename = {"observation.cube": "observation.environment_state"}  # a second state vector: the same kind
    for key, ft in ours["features"].items():
        ref = theirs["features"][rename.get(key, key)] if key != "ros_time" else None
        if ref is None:
            assert ft == {"dtype": "float64", "shape": [1], "names": None}
            continue
        assert set(ft) == set(ref) and ft["dtype"] == ref["dtype"] and len(ft["shape"]) == len(ref["shape"]), key
        if "info" in ft:
            assert ft["info"] | {"video.height": 0, "video.width": 0} == ref["info"] | {"video.height": 0,
                                                                                       "video.width": 0}
    data = schema(out / "data/chunk-000/file-000.parquet")
    ref = schema(LEROBOT / "data/chunk-000/file-000.parquet")
    for col, typ in data.items():
        assert typ == ref.get(rename.get(col, col), "double" if col == "ros_time" else None) or \
            typ.startswith("fixed_size_list<element: float>"), col
    ep, ep_ref = (schema(p / "meta/episodes/chunk-000/file-000.parquet") for p in (out, LEROBOT))
    norm = {k.replace("observation.cube", "observation.environment_state"): v for k, v in ep.items()
            if "ros_time" not in k}
    assert norm == ep_ref
    assert schema(out / "meta/tasks.parquet") == schema(LEROBOT / "meta/tasks.parquet")
    stats, stats_ref = (json.loads((p / "meta" / "stats.json").read_text()) for p in (out, LEROBOT))
    assert {k: sorted(v) for k, v in stats.items() if k not in ("ros_time", "observation.cube")} == \
        {k: sorted(v) for k, v in stats_ref.items()}
    assert np.shape(stats["observation.images.front"]["mean"]) == (3, 1, 1)
    assert result.psnr["front"][0] > 35 and result.psnr["wrist"][0] > 35
    print(f"\nexported frames: PSNR front {result.psnr['front'][0]:.1f} dB (worst {result.psnr['front'][1]:.1f}), "
          f"wrist {result.psnr['wrist'][0]:.1f} dB (worst {result.psnr['wrist'][1]:.1f})")


@pytest.mark.parametrize("actions", ["sent", "target"])
def test_export_then_import_gives_the_dataset_back(tmp_path, actions):
    src = make_store(tmp_path / "d")
    export_lerobot(src, tmp_path / "lr", "me/reach", actions=actions)
    import_lerobot(tmp_path / "lr", tmp_path / "back", actions=actions)
    (a, ea), (b, eb) = episodes(src), episodes(tmp_path / "back")
    assert (b.joint_names, b.camera_names, b.image_shapes, b.state_dims, b.dt) == \
        (a.joint_names, a.camera_names, a.image_shapes, a.state_dims, a.dt)
    assert list(b.episode_ends) == list(a.episode_ends)
    assert b.task["description"] == "reach the left target" and b.task["operator"] == "sim"
    for x, y in zip(ea, eb):
        for key in ("timestamp", "joint_pos", "environment_state", "cube"):
            np.testing.assert_array_equal(x[key], y[key])
        first = 0 if actions == "target" else 1  # sent: row 0's action becomes the start position
        np.testing.assert_array_equal(x["action"][first:], y["action"][first:])
        if actions == "sent":
            np.testing.assert_array_equal(y["action"][0], x["joint_pos"][0])
        for cam in ("front", "wrist"):
            assert mean_psnr(x[cam], y[cam]) > 35


def copy_fixture(tmp_path):
    return Path(shutil.copytree(LEROBOT, tmp_path / "src"))


def edit_info(root, **changes):
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            info.pop(key)
        else:
            info[key] = value
    path.write_text(json.dumps(info))
    return info


def refused(src, out, match, **kw):
    with pytest.raises(LeRobotDatasetError, match=match):
        import_lerobot(src, out, **kw)
    assert not out.exists() and no_leftovers(out.parent)


def test_import_refuses_what_it_cannot_read_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    refused(tmp_path / "nothing", out, "info.json is missing")
    src = copy_fixture(tmp_path)
    edit_info(src, codebase_version="v2.1")
    refused(src, out, r"codebase_version = 'v2.1' is not supported.*convert_dataset_v21_to_v30")
    edit_info(src, codebase_version="v3.0")

    info = edit_info(src)
    info["features"]["observation.language"] = {"dtype": "string", "shape": [1], "names": None}
    (src / "meta" / "info.json").write_text(json.dumps(info))
    refused(src, out, r"feature 'observation.language' \(string \[1\]\) has no place.*--ignore observation.language")
    info["features"].pop("observation.language")
    info["features"]["action"]["shape"] = [6]
    (src / "meta" / "info.json").write_text(json.dumps(info))
    refused(src, out, "observation.state has 5 values but action 6")
    shutil.rmtree(src)

    src = copy_fixture(tmp_path)  # a truncated data file
    data = src / "data/chunk-000/file-000.parquet"
    data.write_bytes(data.read_bytes()[:2000])
    refused(src, out, "file-000.parquet is not a readable parquet file")
    shutil.rmtree(src)

    src = copy_fixture(tmp_path)  # a truncated video: found while converting, after the store was begun
    video = src / "videos/observation.images.wrist/chunk-000/file-000.mp4"
    video.write_bytes(video.read_bytes()[:3000])
    refused(src, out, r"wrist/chunk-000/file-000.mp4: (the video is damaged|no frame within|not a readable video)")
    shutil.rmtree(src)

    src = copy_fixture(tmp_path)  # an episode whose rows are not in the data files
    table = pq.read_table(src / "data/chunk-000/file-000.parquet")
    pq.write_table(table.slice(0, 30), src / "data/chunk-000/file-000.parquet")
    refused(src, out, "episode 2 spans rows 23..33, which the data files do not hold")

    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(LeRobotDatasetError, match="exists"):
        import_lerobot(LEROBOT, out)
    with pytest.raises(LeRobotDatasetError, match="not a dp_ros dataset; refusing"):
        import_lerobot(LEROBOT, out, force=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_export_refuses_what_lerobot_cannot_hold_and_writes_nothing(tmp_path):
    out = tmp_path / "lr"
    with pytest.raises(LeRobotDatasetError, match="whole number of frames per second"):
        export_lerobot(make_store(tmp_path / "a", dt=0.07), out, "me/x")
    with pytest.raises(LeRobotDatasetError, match="47x64; yuv420p video needs an even height and width"):
        export_lerobot(make_store(tmp_path / "b", size=(47, 64)), out, "me/x")
    with pytest.raises(LeRobotDatasetError, match="must look like USER/NAME"):
        export_lerobot(tmp_path / "a", out, "nameonly")
    EpisodeStore.create(tmp_path / "empty", ["j"], {}, 0.1).close()
    with pytest.raises(LeRobotDatasetError, match="no episodes"):
        export_lerobot(tmp_path / "empty", out, "me/x")
    assert not out.exists() and no_leftovers(tmp_path)
    src = make_store(tmp_path / "c", lengths=(5,))
    export_lerobot(src, out, "me/x")
    with pytest.raises(LeRobotDatasetError, match="exists"):
        export_lerobot(src, out, "me/x")
    export_lerobot(src, out, "me/x", task="new words", force=True)  # replaces its own kind only
    assert pq.read_table(out / "meta/tasks.parquet").column("__index_level_0__").to_pylist() == ["new words"]
    with pytest.raises(LeRobotDatasetError, match="not a LeRobot dataset; refusing"):
        export_lerobot(src, tmp_path / "c", "me/x", force=True)
    assert no_leftovers(tmp_path)


def test_cli(tmp_path, capsys):
    src = make_store(tmp_path / "d", lengths=(6, 5))
    assert main(["dataset", "export-lerobot", str(src), "--out", str(tmp_path / "lr"), "--repo-id", "me/reach"]) == 0
    out = capsys.readouterr().out
    assert "2 episodes, 11 frames at 10 fps" in out and "PSNR" in out and "LeRobot dataset:" in out
    assert main(["dataset", "import-lerobot", str(tmp_path / "lr"), "--out", str(tmp_path / "back"),
                 "--size", "16x20", "--ignore", "observation.cube"]) == 0
    assert "observation.cube: not imported" in capsys.readouterr().out
    assert main(["dataset", "import-lerobot", str(tmp_path / "lr"), "--out", str(tmp_path / "back")]) == 2
    assert "exists" in capsys.readouterr().err
