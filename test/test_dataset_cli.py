"""``dataset info`` and ``dataset view`` on a small generated store."""
import argparse
import json

import cv2
import numpy as np
import pytest

from dp_ros.dataset import EpisodeStore
from dp_ros.dataset.cli import add_info_arguments, add_view_arguments, run_info, run_view

from dataset_helpers import CAMERAS, JOINTS, TASK, create, record

LENGTHS = (5, 7, 9)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "demo.zarr"
    with create(path) as store:
        for episode, n in enumerate(LENGTHS):
            record(store, episode, n)
    return path


def _run(add_arguments, run, argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(argv))


def test_info_table(store_path, capsys):
    assert _run(add_info_arguments, run_info, [str(store_path)]) == 0
    out = capsys.readouterr().out
    assert "episodes  3   frames 21" in out
    assert "length    min 5  mean 7.0  max 9 frames" in out
    assert "10.00 Hz measured" in out and "nominal 10.00 Hz (dt 0.1 s)" in out
    assert "wrist 12x16, front 8x10" in out and "j1, j2, j3" in out
    assert '"name": "stack"' in out
    assert "gaps      none" in out
    assert all(any(line.startswith(j) for line in out.splitlines()) for j in JOINTS)  # statistics rows


def test_info_json(store_path, capsys):
    assert _run(add_info_arguments, run_info, [str(store_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["n_episodes"], info["n_frames"]) == (3, 21)
    assert [e["frames"] for e in info["episodes"]] == list(LENGTHS)
    assert info["length"] == {"min": 5, "mean": 7.0, "max": 9}
    assert info["duration_s"] == pytest.approx(0.1 * (4 + 6 + 8))
    assert info["measured_rate_hz"] == pytest.approx(10.0) and info["nominal_rate_hz"] == pytest.approx(10.0)
    assert info["cameras"] == {c: list(hw) for c, hw in CAMERAS.items()}
    assert info["joint_names"] == list(JOINTS) and info["task"] == TASK
    with EpisodeStore.open(store_path) as store:
        action = np.concatenate([store.episode(i)["action"] for i in range(3)]).astype(np.float64)
    for stat in ("min", "max", "mean", "std"):
        np.testing.assert_allclose(info["action"][stat], getattr(action, stat)(axis=0), rtol=1e-12)


def test_info_errors(tmp_path, capsys):
    assert _run(add_info_arguments, run_info, [str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_view_png(store_path, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert _run(add_view_arguments, run_view, [str(store_path), "--episode", "2", "--out", str(out),
                                               "--every", "2"]) == 0
    assert str(out) in capsys.readouterr().out
    img = cv2.imread(str(out))
    assert img is not None
    h, w = img.shape[:2]
    assert w == 16 * 80  # 16 inches at 80 dpi
    # 5 frames of 2 cameras (one row each) and 3 joint plots of 1.6 inches
    assert 3 * 1.6 * 80 < h < 3000
    assert img.std() > 10  # not blank


def test_view_default_out_and_negative_index(store_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _run(add_view_arguments, run_view, [str(store_path), "--episode", "-1"]) == 0
    assert cv2.imread(str(tmp_path / "episode_2.png")) is not None


@pytest.mark.parametrize("every, frames", [(None, 9), (2, 5)])
def test_view_mp4(store_path, tmp_path, every, frames):
    out = tmp_path / "episode.mp4"
    argv = [str(store_path), "--episode", "2", "--out", str(out)] + (["--every", str(every)] if every else [])
    assert _run(add_view_arguments, run_view, argv) == 0
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened()
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (16 + 10, 12)
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == frames


@pytest.mark.parametrize("argv, words", [
    (["--episode", "3"], "episode 3 does not exist"),
    (["--episode", "-4"], "episode -4 does not exist"),
    (["--episode", "0", "--out", "x.gif"], "write a .png"),
    (["--episode", "0", "--every", "0"], "at least 1")])
def test_view_errors(store_path, tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    assert _run(add_view_arguments, run_view, [str(store_path), *argv]) == 2
    assert words in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_info_reports_gaps(tmp_path, capsys):
    """Issue 14.8: dropped record ticks are listed (frames more than 1.5 dt apart)."""
    import numpy as np

    path = tmp_path / "gaps.zarr"
    with create(path) as store:
        record(store, 0, 5)
        writer = store.begin_episode()
        for k, t in enumerate([200.0, 200.1, 200.45, 200.55, 200.65, 200.9]):  # 0.35 s and 0.25 s gaps
            writer.add(t, np.zeros(3), np.zeros(3), {c: np.zeros((h, w, 3), np.uint8) for c, (h, w) in CAMERAS.items()})
        writer.commit()
    assert _run(add_info_arguments, run_info, [str(path)]) == 0
    out = capsys.readouterr().out
    assert "gaps      2 in 1 episodes" in out and "episodes 1 (2)" in out
    assert "largest 0.350 s in episode 1 after frame 1" in out
    assert _run(add_info_arguments, run_info, [str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [g["after_frame"] for g in info["episodes"][1]["gaps"]] == [1, 4] and info["episodes"][0]["gaps"] == []
