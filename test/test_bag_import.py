"""Bag import: synthetic rosbag2 recordings (sqlite3 and MCAP) written with rosbags, imported,
and every stored tick checked against values computed directly from what was written."""
import argparse
import errno
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

import dp_ros.dataset.store as store_module
from dp_ros.dataset import DatasetError, EpisodeStore
from dp_ros.dataset.bag_import import add_arguments, import_bag, run

TS = get_typestore(Stores.ROS2_HUMBLE)
T = TS.types
MS = 1_000_000  # ns
BASE = 1_700_000_000 * 1_000_000_000  # a realistic ROS time, so float seconds are as coarse as on a robot
JOINTS = ("j1", "j2")
SIZE = (4, 6)  # stored (H, W); the cameras send 8x12 and 16x24, the same aspect ratio
DT = 0.1
MAX_AGE = 0.25
CAMERAS = {"front": "/front/image_raw", "wrist": "/wrist/image_raw/compressed"}
JOINT_TOPIC = "/joint_states"
ACTION_TOPIC = "/arm_controller/joint_trajectory"
STORAGES = [StoragePlugin.SQLITE3, StoragePlugin.MCAP]


@dataclass
class Sent:
    """One message as written: what the reference expectations are computed from."""

    log: int  # ns
    stamp: int  # ns: the header stamp, or for the zero-stamped commands their log time
    stream: str
    value: object  # joint positions in JOINTS order, the action, or the frame's RGB pixel


def front_pixel(i):
    return np.array([i, 255 - i, 7], np.uint8)


def wrist_pixel(j):
    return np.array([3 * j, 50, 200 - j], np.uint8)


def q(stamp_ns):
    s = (stamp_ns - BASE) / 1e9
    return np.array([np.sin(3.0 * s), s * s])


def action(k):
    return np.array([10.0 + k, -0.5 * k])


def header(ns):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                    frame_id="")


def write_bag(path, storage, wrist_gap=None, corrupt_wrist=(), action_topic=ACTION_TOPIC):
    """About 2 s: front rgb8 Image at 30 Hz (20 ms latency), wrist png CompressedImage at 15 Hz
    (30 ms latency), JointState at 200 Hz (stamps 2 ms ahead of the log time, an extra joint,
    joints out of order, plus one foreign and one incomplete message), zero-stamped
    JointTrajectory commands at 10 Hz, and an unrelated String topic. Returns what was sent."""
    out, sent = [], []  # (log, topic, msgtype, msg)
    for i in range(60):
        stamp = BASE + 5 * MS + i * 33_333_333
        img = np.broadcast_to(front_pixel(i), (8, 12, 3))
        msg = T["sensor_msgs/msg/Image"](header=header(stamp), height=8, width=12, encoding="rgb8", is_bigendian=0,
                                         step=36, data=np.ascontiguousarray(img).reshape(-1))
        out.append((stamp + 20 * MS, CAMERAS["front"], "sensor_msgs/msg/Image", msg))
        sent.append(Sent(stamp + 20 * MS, stamp, "front", front_pixel(i)))
    for j in range(30):
        stamp = BASE + 11 * MS + j * 66_666_667
        if wrist_gap and wrist_gap[0] <= (stamp - BASE) / 1e9 < wrist_gap[1]:
            continue
        bgr = np.broadcast_to(wrist_pixel(j)[::-1], (16, 24, 3))
        data = b"not a png" if j in corrupt_wrist else cv2.imencode(".png", np.ascontiguousarray(bgr))[1].tobytes()
        msg = T["sensor_msgs/msg/CompressedImage"](header=header(stamp), format="png",
                                                   data=np.frombuffer(data, np.uint8))
        out.append((stamp + 30 * MS, CAMERAS["wrist"], "sensor_msgs/msg/CompressedImage", msg))
        sent.append(Sent(stamp + 30 * MS, stamp, "wrist", None if j in corrupt_wrist else wrist_pixel(j)))

    def joint_state(stamp, names, positions):
        empty = np.zeros(0)
        return T["sensor_msgs/msg/JointState"](header=header(stamp), name=names, position=np.array(positions, float),
                                              velocity=empty, effort=empty)

    for k in range(400):
        log = BASE + 2 * MS + k * 5 * MS
        j1, j2 = q(log + 2 * MS)
        out.append((log, JOINT_TOPIC, "sensor_msgs/msg/JointState",
                    joint_state(log + 2 * MS, ["extra", "j2", "j1"], [99.0, j2, j1])))
        sent.append(Sent(log, log + 2 * MS, "joint_pos", np.array([j1, j2])))
    # the gripper's state (ignored) and a message without j2 (rejected, counted)
    out.append((BASE + 700 * MS + 1000, JOINT_TOPIC, "sensor_msgs/msg/JointState",
                joint_state(BASE + 700 * MS, ["gripper"], [0.5])))
    out.append((BASE + 900 * MS + 1000, JOINT_TOPIC, "sensor_msgs/msg/JointState",
                joint_state(BASE + 900 * MS, ["j1", "extra"], [5.0, 1.0])))

    for k in range(20):
        log = BASE + 53 * MS + k * 100 * MS
        a1, a2 = action(k)
        point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=np.array([a2, a1]), velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
            time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=100 * MS))
        msg = T["trajectory_msgs/msg/JointTrajectory"](header=header(0), joint_names=["j2", "j1"], points=[point])
        out.append((log, action_topic, "trajectory_msgs/msg/JointTrajectory", msg))
        sent.append(Sent(log, log, "action", action(k)))
    out.append((BASE + 1000 * MS, "/diagnostics", "std_msgs/msg/String", T["std_msgs/msg/String"](data="ok")))

    out.sort(key=lambda e: e[0])  # stable: equal log times keep their order
    with Writer(Path(path), version=9, storage_plugin=storage) as writer:
        conns = {}
        for log, topic, msgtype, msg in out:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=TS)
            writer.write(conns[topic], log, TS.serialize_cdr(msg, msgtype))
    return sent


def expected_ticks(sent, dt=DT):
    """(tick ns, {stream: value} or the stale stream names), straight from the messages sent."""
    streams = ("front", "wrist", "joint_pos", "action")
    t0 = max(min(m.log for m in sent if m.stream == s) for s in streams)
    last = max(m.log for m in sent)
    out = []
    for t in range(t0, last + 1, round(dt * 1e9)):
        arrived = {s: sorted((m for m in sent if m.stream == s and m.log <= t), key=lambda m: m.stamp)
                   for s in streams}
        stale = [s for s in streams if (t - arrived[s][-1].stamp) / 1e9 > MAX_AGE]
        if stale:
            out.append((t, stale))
            continue
        values = {s: [m for m in arrived[s] if m.stamp <= t][-1].value for s in ("front", "wrist")}
        stamps = [m.stamp - BASE for m in arrived["joint_pos"]]  # interpolated at t, held past the newest
        values["joint_pos"] = np.array([np.interp(t - BASE, stamps, [m.value[i] for m in arrived["joint_pos"]])
                                        for i in range(len(JOINTS))])
        values["action"] = setpoint(t, arrived["action"], sent)
        out.append((t, values))
    return out


def setpoint(t, commands, sent):
    """Where a controller following the zero-stamped, one-point commands is at t: each
    goes linearly from where the previous one had it on arrival (the first: from the
    newest joint state) to its point 100 ms later, then holds it."""
    k = len(commands) - 1
    log = commands[k].log
    if k == 0:
        joints = [m for m in sent if m.stream == "joint_pos" and m.log <= log]
        start = max(joints, key=lambda m: m.stamp).value
    else:
        start = setpoint(log, commands[:k], sent)
    w = min((t - log) / (100 * MS), 1.0)
    return (1 - w) * start + w * commands[k].value


def do_import(bag, store, **kwargs):
    return import_bag(bag, store, JOINTS, CAMERAS, SIZE, dt=DT, action_topic=ACTION_TOPIC, max_obs_age=MAX_AGE,
                      **kwargs)


def check_episode(episode, ticks):
    """The stored frames are exactly the ready ticks, with the expected values."""
    kept = [(t, v) for t, v in ticks if isinstance(v, dict) and v["wrist"] is not None]
    np.testing.assert_array_equal(episode["timestamp"], [t / 1e9 for t, _ in kept])
    for n, (t, v) in enumerate(kept):
        np.testing.assert_allclose(episode["joint_pos"][n], v["joint_pos"], atol=1e-5, err_msg=f"tick {n}")
        np.testing.assert_allclose(episode["action"][n], v["action"], atol=1e-5, err_msg=f"tick {n}")
        for cam in CAMERAS:
            assert episode[cam][n].shape == (*SIZE, 3)
            assert (episode[cam][n] == v[cam]).all(), f"tick {n} {cam}: {episode[cam][n][0, 0]} != {v[cam]}"


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: s.name.lower())
def test_every_tick_matches_what_was_recorded(tmp_path, storage):
    sent = write_bag(tmp_path / "bag", storage)
    report = do_import(tmp_path / "bag", tmp_path / "demo.zarr", task={"description": "pick"})
    ticks = expected_ticks(sent)
    assert len(ticks) == 20 and all(isinstance(v, dict) for _, v in ticks)
    assert (report.episode, report.ticks, report.stored, report.dropped) == (0, 20, 20, 0)
    assert report.drop_reasons == {}
    assert report.rejected == {"joint_pos": 1}  # the message without j2; the gripper's is ignored
    assert report.duration_s == pytest.approx(1.9)
    with EpisodeStore.open(tmp_path / "demo.zarr") as store:
        assert store.n_episodes == 1 and store.dt == DT and store.joint_names == JOINTS
        assert store.image_shapes == {c: SIZE for c in CAMERAS} and store.task == {"description": "pick"}
        episode = store.episode(0)
    np.testing.assert_allclose(np.diff(episode["timestamp"]), DT, atol=1e-6)
    check_episode(episode, ticks)
    # the joints really are interpolated (stamps run 2 ms ahead of arrival), not just held
    held = [sorted(m.stamp for m in sent if m.stream == "joint_pos" and m.log <= t)[-1] for t, _ in ticks]
    assert all(s > t for s, (t, _) in zip(held, ticks))


def test_a_camera_gap_and_an_undecodable_frame_drop_those_ticks(tmp_path):
    sent = write_bag(tmp_path / "bag", StoragePlugin.MCAP, wrist_gap=(0.8, 1.3), corrupt_wrist={4})
    report = do_import(tmp_path / "bag", tmp_path / "demo.zarr")
    ticks = expected_ticks(sent)
    stale = sum(1 for _, v in ticks if not isinstance(v, dict))
    corrupt = sum(1 for _, v in ticks if isinstance(v, dict) and v["wrist"] is None)
    assert stale >= 3 and corrupt >= 1
    assert all(v == ["wrist"] for _, v in ticks if not isinstance(v, dict))
    assert report.drop_reasons == {"stale: wrist": stale, "undecodable image: wrist": corrupt}
    assert (report.ticks, report.dropped, report.stored) == (20, stale + corrupt, 20 - stale - corrupt)
    with EpisodeStore.open(tmp_path / "demo.zarr") as store:
        check_episode(store.episode(0), ticks)


def test_two_bags_append_two_episodes(tmp_path):
    write_bag(tmp_path / "a", StoragePlugin.SQLITE3)
    write_bag(tmp_path / "b", StoragePlugin.MCAP)
    assert do_import(tmp_path / "a", tmp_path / "demo.zarr").episode == 0
    assert do_import(tmp_path / "b" / "b.mcap", tmp_path / "demo.zarr").episode == 1  # the storage file alone works
    with EpisodeStore.open(tmp_path / "demo.zarr") as store:
        np.testing.assert_array_equal(store.episode_ends, [20, 40])
        np.testing.assert_array_equal(store.episode(0)["action"], store.episode(1)["action"])


def test_a_missing_topic_names_the_bags_topics_and_adds_nothing(tmp_path):
    write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)
    with pytest.raises(DatasetError, match=r"has no topic /top/image_raw; its topics are:\n  /arm_controller") as err:
        import_bag(tmp_path / "bag", tmp_path / "new.zarr", JOINTS, {**CAMERAS, "top": "/top/image_raw"}, SIZE,
                   action_topic=ACTION_TOPIC)
    assert "/front/image_raw (sensor_msgs/msg/Image)" in str(err.value)
    assert not (tmp_path / "new.zarr").exists()  # checked before the store is created

    do_import(tmp_path / "bag", tmp_path / "demo.zarr")
    with pytest.raises(DatasetError, match="has no topic /joint_trajectory_controller/joint_trajectory"):
        import_bag(tmp_path / "bag", tmp_path / "demo.zarr", JOINTS, CAMERAS, SIZE)  # the default action topic
    with EpisodeStore.open(tmp_path / "demo.zarr") as store:
        assert store.n_episodes == 1
    assert not (tmp_path / "demo.zarr" / ".staging").exists()


def test_a_failure_while_writing_discards_the_episode(tmp_path, monkeypatch):
    write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)
    do_import(tmp_path / "bag", tmp_path / "demo.zarr")
    calls = []

    def disk_full_later(fd, data):
        calls.append(fd)
        if len(calls) > 30:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    real = store_module._write_all
    monkeypatch.setattr(store_module, "_write_all", disk_full_later)
    with pytest.raises(DatasetError, match="disk full"):
        do_import(tmp_path / "bag", tmp_path / "demo.zarr")
    monkeypatch.undo()
    with EpisodeStore.open(tmp_path / "demo.zarr") as store:
        assert (store.n_episodes, store.n_frames) == (1, 20)
    assert not (tmp_path / "demo.zarr" / ".staging").exists()


def test_bad_inputs_say_what_is_wrong(tmp_path):
    write_bag(tmp_path / "bag", StoragePlugin.MCAP)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="does not exist"):
        do_import(tmp_path / "nope", tmp_path / "demo.zarr")
    with pytest.raises(DatasetError, match="not a rosbag2 directory"):
        do_import(tmp_path / "empty", tmp_path / "demo.zarr")
    with pytest.raises(DatasetError, match="cannot read .*notes.txt as a rosbag2 recording"):
        do_import(tmp_path / "notes.txt", tmp_path / "demo.zarr")
    with pytest.raises(DatasetError, match="topic /diagnostics carries std_msgs/msg/String; expected sensor_msgs"):
        import_bag(tmp_path / "bag", tmp_path / "demo.zarr", JOINTS, {"front": "/diagnostics"}, SIZE,
                   action_topic=ACTION_TOPIC)
    with pytest.raises(ValueError, match="more than one stream"):
        import_bag(tmp_path / "bag", tmp_path / "demo.zarr", JOINTS, {"front": JOINT_TOPIC}, SIZE)
    with pytest.raises(DatasetError, match="no tick could be stored"):  # j3 is in no message
        import_bag(tmp_path / "bag", tmp_path / "demo.zarr", (*JOINTS, "j3"), CAMERAS, SIZE, action_topic=ACTION_TOPIC)
    assert not (tmp_path / "demo.zarr" / ".staging").exists()


def test_command_line(tmp_path, capsys):
    write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = [str(tmp_path / "bag"), "--out", str(tmp_path / "demo.zarr"), "--joints", "j1,j2",
            "--camera", "front=/front/image_raw", "--camera", "wrist=/wrist/image_raw/compressed",
            "--size", "4x6", "--action-topic", ACTION_TOPIC, "--task", '{"description": "pick"}']
    assert run(parser.parse_args(argv)) == 0
    out = capsys.readouterr().out
    assert "episode 0: 20 of 20 ticks stored (1.90 s), 0 dropped" in out and "1  messages on joint_pos" in out
    with EpisodeStore.open(tmp_path / "demo.zarr") as store:
        assert store.image_shapes == {"front": (4, 6), "wrist": (4, 6)} and store.task == {"description": "pick"}

    assert run(parser.parse_args(argv[:-4])) == 2  # the default action topic is not in the bag
    assert "has no topic /joint_trajectory_controller/joint_trajectory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--size", "big"])
    assert "not HEIGHTxWIDTH" in capsys.readouterr().err
