"""The episode store: exact round trips, the zarr format 2 layout, clear errors, and
atomic commits under SIGKILL, crashes inside commit() and a full disk."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import dp_ros.dataset.store as store_module
from dp_ros.dataset import FORMAT_VERSION, DatasetError, EpisodeStore

from dataset_helpers import CAMERAS, DT, JOINTS, LENGTHS, TASK, assert_episode, create, frame, record

HELPERS = Path(__file__).with_name("dataset_helpers.py")


def test_roundtrip_with_a_discarded_episode(tmp_path):
    path = tmp_path / "demo.zarr"
    with create(path) as store:
        assert record(store, 0, 5) == 0
        writer = store.begin_episode()
        for k in range(4):
            writer.add(*frame(1, k))
        writer.discard()
        assert record(store, 2, 3) == 1
        assert record(store, 3, 6) == 2
        assert not (path / ".staging").exists()
    with EpisodeStore.open(path) as store:
        assert (store.n_episodes, store.n_frames) == (3, 14)
        np.testing.assert_array_equal(store.episode_ends, [5, 8, 14])
        assert store.episode_ends.dtype == np.int64
        assert store.episode_slice(1) == slice(5, 8)
        for index, (episode, n) in enumerate([(0, 5), (2, 3), (3, 6)]):
            assert_episode(store, index, episode, n)
        assert_episode(store, -1, 3, 6)
        assert store.joint_names == JOINTS and store.camera_names == tuple(CAMERAS)
        assert store.image_shapes == CAMERAS and store.dt == DT and store.task == TASK
        assert store.attrs["format_version"] == FORMAT_VERSION and store.attrs["created"]
        stats = store.stats()
        assert [e["frames"] for e in stats["episodes"]] == [5, 3, 6]
        assert stats["episodes"][0]["duration_s"] == pytest.approx(0.4)
        assert stats["episodes"][0]["rate_hz"] == pytest.approx(10.0)
        jp = np.concatenate([store.episode(i)["joint_pos"] for i in range(3)]).astype(np.float64)
        np.testing.assert_allclose(stats["joint_pos"]["mean"], jp.mean(0))
        np.testing.assert_allclose(stats["joint_pos"]["std"], jp.std(0))
        json.dumps(stats)  # plain Python types


def test_reopen_appends(tmp_path):
    with create(tmp_path / "d") as store:
        record(store, 0, 5)
    with create(tmp_path / "d") as store:  # same joints, cameras and dt: append
        assert store.n_episodes == 1
        record(store, 1, 7)
    with EpisodeStore.open(tmp_path / "d") as store:
        np.testing.assert_array_equal(store.episode_ends, [5, 12])
        assert_episode(store, 1, 1, 7)


def test_layout_is_zarr_format_2(tmp_path):
    path = tmp_path / "d"
    with create(path) as store:
        record(store, 0, 5)
        record(store, 1, 7)
    for f in [".zgroup", ".zattrs", "data/.zgroup", "meta/.zgroup", "meta/episode_ends/.zarray",
              *(f"data/{k}/.zarray" for k in [*CAMERAS, "joint_pos", "action", "timestamp"])]:
        assert (path / f).is_file(), f
    assert json.loads((path / ".zgroup").read_text())["zarr_format"] == 2
    wrist = json.loads((path / "data/wrist/.zarray").read_text())
    assert wrist["chunks"] == [1, 12, 16, 3] and wrist["dtype"] == "|u1"
    assert wrist["compressor"]["id"] == "blosc" and wrist["compressor"]["cname"] == "zstd"

    root = zarr.open_group(str(path), mode="r", zarr_format=2)
    assert root.attrs["joint_names"] == list(JOINTS)
    assert root.attrs["image_shapes"] == {c: list(hw) for c, hw in CAMERAS.items()}
    assert root["data/wrist"].shape == (12, 12, 16, 3) and root["data/wrist"].chunks == (1, 12, 16, 3)
    assert root["data/joint_pos"].dtype == np.float32 and root["data/timestamp"].dtype == np.float64
    assert root["data/joint_pos"].shape == (12, 3)
    np.testing.assert_array_equal(root["meta/episode_ends"][:], [5, 12])
    assert root["meta/episode_ends"].dtype == np.int64
    assert sorted(root.keys()) == ["data", "meta"]


# ---- validation ----

def _bad_frame(case):
    t, jp, act, images = frame(0, 1)
    images = dict(images)
    if case == "image shape":
        images["wrist"] = np.zeros((16, 12, 3), np.uint8)
    elif case == "image dtype":
        images["wrist"] = images["wrist"].astype(np.float32)
    elif case == "missing camera":
        del images["front"]
    elif case == "unknown camera":
        images["top"] = images["front"]
    elif case == "NaN joint":
        jp = jp.copy()
        jp[1] = np.nan
    elif case == "wrong J":
        act = act[:2]
    elif case == "timestamp":
        t = frame(0, 0)[0]  # not after the frame already added
    return t, jp, act, images


@pytest.mark.parametrize("case, words", [
    ("image shape", "image 'wrist'"), ("image dtype", "image 'wrist'"), ("missing camera", "missing ['front']"),
    ("unknown camera", "unknown ['top']"), ("NaN joint", "joint_pos is not finite"),
    ("wrong J", "action has shape (2,)"), ("timestamp", "timestamp")])
def test_add_rejects_bad_frames_and_writes_nothing(tmp_path, case, words):
    with create(tmp_path / "d") as store:
        writer = store.begin_episode()
        writer.add(*frame(0, 0))
        with pytest.raises(DatasetError, match=re.escape(words)):
            writer.add(*_bad_frame(case))
        assert writer.frames == 1
        writer.add(*frame(0, 1))
        writer.commit()
        assert_episode(store, 0, 0, 2)


def test_empty_commit_and_closed_writer(tmp_path):
    with create(tmp_path / "d") as store:
        writer = store.begin_episode()
        with pytest.raises(DatasetError, match="no frames"):
            writer.commit()
        with pytest.raises(DatasetError, match="already being recorded"):
            store.begin_episode()
        writer.discard()
        with pytest.raises(DatasetError, match="already committed or discarded"):
            writer.add(*frame(0, 0))
        writer.discard()  # harmless
        assert store.n_episodes == 0


@pytest.mark.parametrize("change, words", [
    ({"joint_names": ("j1", "j2", "j4")}, "joints"),
    ({"cameras": {"wrist": (12, 16)}}, "cameras"),
    ({"cameras": {"wrist": (12, 16), "front": (10, 8)}}, "cameras"),
    ({"dt": 0.05}, "dt 0.1 s, not 0.05 s")])
def test_reopen_with_other_joints_cameras_or_dt_is_refused(tmp_path, change, words):
    create(tmp_path / "d").close()
    spec = {"joint_names": JOINTS, "cameras": CAMERAS, "dt": DT, **change}
    with pytest.raises(DatasetError, match=words):
        EpisodeStore.create(tmp_path / "d", **spec)
    EpisodeStore.open(tmp_path / "d", writable=True).close()  # the refused create released the lock


@pytest.mark.parametrize("spec, words", [
    ({"joint_names": ()}, "empty"), ({"joint_names": ("a", "a")}, "repeats"),
    ({"cameras": {"wr ist": (4, 4)}}, "not allowed"), ({"cameras": {"action": (4, 4)}}, "not allowed"),
    ({"cameras": {"wrist": (0, 4)}}, "positive"), ({"dt": 0.0}, "positive"), ({"dt": float("nan")}, "positive")])
def test_create_validates_its_arguments(tmp_path, spec, words):
    args = {"joint_names": JOINTS, "cameras": CAMERAS, "dt": DT, **spec}
    with pytest.raises(DatasetError, match=words):
        EpisodeStore.create(tmp_path / "d", **args)
    assert not (tmp_path / "d").exists()


def test_open_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        EpisodeStore.open(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="not a dp_ros dataset"):
        EpisodeStore.open(tmp_path / "junk")
    with pytest.raises(DatasetError, match="not a dp_ros dataset"):
        EpisodeStore.create(tmp_path / "junk", JOINTS, CAMERAS, DT)
    zarr.open_group(str(tmp_path / "plain"), mode="w", zarr_format=2)
    with pytest.raises(DatasetError, match="no format_version"):
        EpisodeStore.open(tmp_path / "plain")


def test_unknown_format_version(tmp_path):
    create(tmp_path / "d").close()
    zarr.open_group(str(tmp_path / "d"), mode="r+", zarr_format=2).attrs["format_version"] = 99
    with pytest.raises(DatasetError, match="format_version 99"):
        EpisodeStore.open(tmp_path / "d")


def test_unwritable_path(tmp_path):
    (tmp_path / "file").write_text("a regular file")
    with pytest.raises(DatasetError, match="cannot create a dataset"):
        EpisodeStore.create(tmp_path / "file" / "d", JOINTS, CAMERAS, DT)


def test_one_writer_at_a_time(tmp_path):
    store = create(tmp_path / "d")
    with pytest.raises(DatasetError, match="open for writing elsewhere"):
        EpisodeStore.open(tmp_path / "d", writable=True)
    with pytest.raises(DatasetError, match="already holds a dataset"):
        create(tmp_path / "d", exist_ok=False)
    with EpisodeStore.open(tmp_path / "d") as reader:  # reading needs no lock
        with pytest.raises(DatasetError, match="read-only"):
            reader.begin_episode()
    store.close()
    EpisodeStore.open(tmp_path / "d", writable=True).close()


# ---- atomicity ----

def _run_crash_recorder(mode, path):
    proc = subprocess.Popen([sys.executable, str(HELPERS), mode, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if mode == "recording":
        line = proc.stdout.readline()
        assert line.strip() == "READY", proc.stderr.read()
        time.sleep(0.2)  # let it record on: the kill lands anywhere in add()
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()


def _assert_two_committed_episodes(store):
    assert store.n_episodes == 2
    np.testing.assert_array_equal(store.episode_ends, [LENGTHS[0], LENGTHS[0] + LENGTHS[1]])
    assert_episode(store, 0, 0, LENGTHS[0])
    assert_episode(store, 1, 1, LENGTHS[1])


def _assert_recovers(path):
    """A writable open cleans up; a new episode commits; everything reads back exactly."""
    with EpisodeStore.open(path, writable=True) as store:
        _assert_two_committed_episodes(store)
        assert not (path / ".staging").exists()
        assert not list(path.rglob("*.partial"))
        n = store.n_frames
        assert all(zarr.open_array(str(path / "data" / k), mode="r").shape[0] == n
                   for k in [*CAMERAS, "joint_pos", "action", "timestamp"])
        assert record(store, 5, 4) == 2
    with EpisodeStore.open(path) as store:
        assert_episode(store, 1, 1, LENGTHS[1])
        assert_episode(store, 2, 5, 4)


def test_sigkill_while_recording_keeps_committed_episodes(tmp_path):
    path = tmp_path / "d"
    _run_crash_recorder("recording", path)
    staged = list((path / ".staging").iterdir())
    assert len(staged) == 1 and (staged[0] / "timestamp.bin").stat().st_size >= 20 * 8
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    with EpisodeStore.open(path) as store:  # read-only: readable, changes nothing
        _assert_two_committed_episodes(store)
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before
    _assert_recovers(path)


@pytest.mark.parametrize("mode", ["commit-data", "commit-torn"])
def test_sigkill_inside_commit_loses_only_that_episode(tmp_path, mode):
    path = tmp_path / "d"
    _run_crash_recorder(mode, path)
    root = zarr.open_group(str(path), mode="r", zarr_format=2)
    committed = LENGTHS[0] + LENGTHS[1]
    assert root["data/joint_pos"].shape[0] == committed + LENGTHS[2]  # the data had grown
    assert root["meta/episode_ends"].shape[0] == (3 if mode == "commit-torn" else 2)
    with EpisodeStore.open(path) as store:
        _assert_two_committed_episodes(store)
    assert root["data/wrist"].shape[0] == committed + LENGTHS[2]  # read-only changed nothing
    _assert_recovers(path)


def test_failed_commit_rolls_back_and_can_be_retried(tmp_path, monkeypatch):
    path = tmp_path / "d"
    store = create(path)
    record(store, 0, 5)
    writer = store.begin_episode()
    for k in range(6):
        writer.add(*frame(1, k))

    def full_disk(self, end):
        self._ends_array.resize((len(self._ends) + 1,))
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(EpisodeStore, "_append_episode_end", full_disk)
        with pytest.raises(DatasetError, match="could not commit.*disk full"):
            writer.commit()
    root = zarr.open_group(str(path), mode="r", zarr_format=2)
    assert root["data/wrist"].shape[0] == 5 and root["meta/episode_ends"].shape == (1,)
    assert store.n_episodes == 1 and writer.frames == 6
    assert writer.commit() == 1  # still staged: a retry works
    assert_episode(store, 1, 1, 6)
    store.close()


def test_disk_full_while_adding(tmp_path, monkeypatch):
    path = tmp_path / "d"
    store = create(path)
    record(store, 0, 5)
    writer = store.begin_episode()
    writer.add(*frame(1, 0))
    real_write, calls = store_module._write_all, []

    def fails_on_third_stream(fd, data):
        calls.append(fd)
        if len(calls) == 3:  # mid-frame: two streams already hold this frame
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data)

    with monkeypatch.context() as m:
        m.setattr(store_module, "_write_all", fails_on_third_stream)
        with pytest.raises(DatasetError, match=r"could not write frame 1 .*\(disk full\?\)"):
            writer.add(*frame(1, 1))
    assert writer.frames == 1
    staged = next((path / ".staging").iterdir())
    assert (staged / "timestamp.bin").stat().st_size == 8
    assert (staged / "wrist.bin").stat().st_size == 12 * 16 * 3
    for k in range(1, 4):  # space is back: the episode goes on as if nothing happened
        writer.add(*frame(1, k))
    writer.commit()
    assert_episode(store, 0, 0, 5)
    assert_episode(store, 1, 1, 4)

    def always_full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    writer = store.begin_episode()  # and a failed episode can be discarded
    with monkeypatch.context() as m:
        m.setattr(store_module, "_write_all", always_full)
        with pytest.raises(DatasetError, match="disk full"):
            writer.add(*frame(2, 0))
    writer.discard()
    assert not (path / ".staging").exists()
    store.close()
    with EpisodeStore.open(path) as reader:
        np.testing.assert_array_equal(reader.episode_ends, [5, 9])


def test_close_discards_an_open_episode(tmp_path):
    store = create(tmp_path / "d")
    writer = store.begin_episode()
    writer.add(*frame(0, 0))
    store.close()
    assert not (tmp_path / "d" / ".staging").exists()
    with EpisodeStore.open(tmp_path / "d") as reader:
        assert reader.n_episodes == 0 and reader.stats()["n_frames"] == 0


def test_state_keys_round_trip_and_are_checked(tmp_path):
    path = tmp_path / "d"
    with EpisodeStore.create(path, JOINTS, {}, DT, states={"target_pos": 4}) as store:
        w = store.begin_episode()
        for k in range(3):
            t, q, a, _ = frame(0, k)
            w.add(t, q, a, {}, states={"target_pos": [k, 1.0, 2.0, 3.0]})
        with pytest.raises(DatasetError, match=r"states has keys \[\]"):
            w.add(900.0, q, a, {})
        with pytest.raises(DatasetError, match=r"target_pos has shape \(3,\)"):
            w.add(900.0, q, a, {}, states={"target_pos": [1.0, 2.0, 3.0]})
        with pytest.raises(DatasetError, match=r"not finite .*target_pos\[1\]"):
            w.add(900.0, q, a, {}, states={"target_pos": [1.0, float("nan"), 2.0, 3.0]})
        assert w.frames == 3
        w.commit()
    with EpisodeStore.open(path) as store:
        assert store.state_dims == {"target_pos": 4} and store.camera_names == ()
        ep = store.episode(0)
        assert ep["target_pos"].dtype == np.float32
        np.testing.assert_array_equal(ep["target_pos"][:, 0], [0, 1, 2])
        assert store.stats()["target_pos"]["max"] == pytest.approx([2.0, 1.0, 2.0, 3.0])
    with pytest.raises(DatasetError, match="state keys"):
        EpisodeStore.create(path, JOINTS, {}, DT, states={"target_pos": 6})
    with pytest.raises(DatasetError, match="state keys"):
        EpisodeStore.create(path, JOINTS, {}, DT)
    for bad, words in [({"joint_pos": 2}, "not allowed"), ({"t p": 2}, "not allowed"), ({"x": 0}, "positive"),
                       ({"wrist": 2}, "not allowed")]:
        with pytest.raises(DatasetError, match=words):
            EpisodeStore.create(tmp_path / "e", JOINTS, CAMERAS, DT, states=bad)


def test_datasets_without_state_keys_still_open(tmp_path):
    """Datasets written before state keys existed have no state_dims attribute."""
    with create(tmp_path / "d") as store:
        record(store, 0, 2)
    group = zarr.open_group(str(tmp_path / "d"), mode="r+", zarr_format=2)
    attrs = dict(group.attrs)
    attrs.pop("state_dims")
    group.attrs.clear()
    group.attrs.update(attrs)
    with EpisodeStore.open(tmp_path / "d", writable=True) as store:
        assert store.state_dims == {} and store.n_episodes == 1
        record(store, 1, 2)
