"""``dp_ros dataset import-bag``: one rosbag2 recording (sqlite3 or MCAP) -> one episode.

    dp_ros dataset import-bag BAG --out STORE --joints j1,j2 \\
        --camera front=/front/image_raw --camera wrist=/wrist/image_raw/compressed --size 240x320 --dt 0.1

The bag is replayed, not resampled by hand: every message goes, in log-time order (the
time ros2 bag received it), into the same ObservationBuffer the live teleop_recorder
fills, with ``now`` = its log time. Record ticks run every dt from the first log time at
which every stream has data, and each tick t is sampled with ``window(t, at=t)`` (the recorder's rule) before
any message logged after t is pushed, so a tick sees exactly what the recorder would have
seen at t:

    log time   --c--j-j-a-j-c-j-j-j-c-j-|-j-c-j-j-a-j-c-|-j-j-...
    ticks                             t0               t0+dt          (sampled at the bars)

    camera      newest frame with header.stamp <= t
    joint_pos   the listed joints (by name), interpolated at t (newest if t is past it)
    action      the joint target the arm should have reached at t (docs/timing.md): the
                controller's setpoint at t by the JointTrajectory messages logged up to t,
                each taken over at its log time and followed as the controller does
                (``core.command.Command``: from where it was, linearly to each point at
                stamp + time_from_start, stamp 0 meaning the log time; then holding the last)

A tick with a missing or stale stream (older than max_obs_age at t) is dropped and counted
by reason. Images are decoded to RGB and resized only for the ticks that are stored. The
episode is committed once at the end; on any error it is discarded, so a failed import
adds nothing to the store. Reads with rosbags (pure Python, no ROS installation needed).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import ReaderError
from rosbags.typesys import Stores, get_typestore

from dp_ros.core.command import Command
from dp_ros.core.obs_buffer import ObservationBuffer, StreamSpec
from dp_ros.dataset.store import DatasetError, EpisodeStore
from dp_ros.imaging import ImageError, decode_compressed, decode_image, resize_rgb

log = logging.getLogger(__name__)

JOINTS = "joint_pos"  # stream names, as in teleop_recorder; the store forbids them as camera names
ACTION = "action"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
JOINT_STATE = "sensor_msgs/msg/JointState"
TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
BAG_ERRORS = (AnyReaderError, ReaderError, OSError)


@dataclass
class ImportReport:
    episode: int  # index of the new episode in the store
    ticks: int  # record ticks from the first tick with every stream present to the last message
    stored: int
    dropped: int
    drop_reasons: dict[str, int]  # "stale: wrist" -> ticks
    duration_s: float  # first to last stored tick
    rejected: dict[str, int] = field(default_factory=dict)  # stream -> messages refused on arrival


def _sec(ns: int) -> float:
    """Nanoseconds -> seconds, one conversion for stamps and ticks so equal times compare equal."""
    return ns / 1e9


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class _JointPicker:
    """Named positions -> this dataset's joints in order (cached per name list)."""

    def __init__(self, joint_names: Sequence[str], what: str, ignore_foreign: bool):
        self.joint_names = tuple(joint_names)
        self.what = what
        self.ignore_foreign = ignore_foreign
        self._cache: dict[tuple[str, ...], list[int] | str | None] = {}

    def _index(self, names: tuple[str, ...]) -> list[int] | str | None:
        where = {n: i for i, n in enumerate(names)}
        if len(where) != len(names):
            return f"{self.what}: repeated joint names in {list(names)}"
        if self.ignore_foreign and not any(j in where for j in self.joint_names):
            return None  # another arm's (or the gripper's) state: not ours
        missing = [j for j in self.joint_names if j not in where]
        return f"{self.what}: missing joints {missing}" if missing else [where[j] for j in self.joint_names]

    def pick(self, names, positions) -> np.ndarray | str | None:
        """The positions in dataset order, a rejection reason, or None (ignore the message)."""
        key = tuple(names)
        if key not in self._cache:
            if len(self._cache) >= 64:
                self._cache.clear()
            self._cache[key] = self._index(key)
        idx = self._cache[key]
        if idx is None or isinstance(idx, str):
            return idx
        if len(positions) != len(names):
            return f"{self.what}: {len(positions)} positions for {len(names)} joint names"
        q = np.asarray(positions, dtype=float)[idx]
        if not np.all(np.isfinite(q)):
            return f"{self.what}: NaN or infinite position"
        return q


def _command(msg, picker: _JointPicker, arrival: float, buffer: ObservationBuffer) -> Command | str | None:
    """The controller's path after a JointTrajectory message, a rejection reason, or None."""
    if not msg.points:
        return "trajectory: no points"
    points = []
    for point in msg.points:
        q = picker.pick(msg.joint_names, point.positions)
        if q is None or isinstance(q, str):
            return q
        points.append(q)
    tfs = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points])
    if np.any(np.diff(tfs) <= 0):
        return "trajectory: time_from_start does not increase"
    previous, measured = buffer.newest(ACTION), buffer.newest(JOINTS)
    current = (previous[1].at(arrival) if previous else measured[1] if measured else points[0])
    return Command.from_message(arrival, current, _sec(_stamp_ns(msg.header)), tfs, np.stack(points))


@dataclass(frozen=True)
class _Frame:
    """A camera message in the buffer, decoded only if a stored tick uses it."""

    decode: Callable[[Any], np.ndarray]
    msg: Any


def _image_decoder(msgtype: str) -> Callable[[Any], np.ndarray]:
    if msgtype == COMPRESSED:
        return lambda m: decode_compressed(m.format, m.data)
    return lambda m: decode_image(m.encoding, m.height, m.width, m.step, bool(m.is_bigendian), m.data)


def _open_reader(bag: Path) -> AnyReader:
    if not bag.exists():
        raise DatasetError(f"{bag} does not exist: give a rosbag2 directory (or its .db3 / .mcap file)")
    if bag.is_dir() and not (bag / "metadata.yaml").is_file():
        raise DatasetError(f"{bag} is not a rosbag2 directory (no metadata.yaml): give the directory "
                           "ros2 bag record wrote, or its .db3 / .mcap file")
    try:
        # The typestore is only used for bags without embedded message definitions (sqlite3
        # bags from Humble and older); these message types are the same in every ROS 2 release.
        reader = AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
        reader.open()
    except BAG_ERRORS as e:
        raise DatasetError(f"cannot read {bag} as a rosbag2 recording: {e}") from None
    return reader


def _connections(reader: AnyReader, bag: Path, wanted: Mapping[str, tuple[str, ...]]):
    """topic -> its connections, after checking that every wanted topic is there with an allowed type."""
    topics = reader.topics
    missing = [t for t in wanted if t not in topics]
    if missing:
        have = "\n  ".join(f"{t} ({info.msgtype})" for t, info in topics.items()) or "(none)"
        raise DatasetError(f"{bag} has no topic {', '.join(missing)}; its topics are:\n  {have}")
    for topic, types in wanted.items():
        bad = sorted({c.msgtype for c in topics[topic].connections} - set(types))
        if bad:
            raise DatasetError(f"{bag}: topic {topic} carries {', '.join(bad)}; expected {' or '.join(types)}")
    return {t: topics[t].connections for t in wanted}


def import_bag(
    bag: str | Path,
    store_path: str | Path,
    joint_names: Sequence[str],
    cameras: Mapping[str, str],
    image_size: tuple[int, int],
    dt: float = 0.1,
    joint_states_topic: str = "/joint_states",
    action_topic: str = "/joint_trajectory_controller/joint_trajectory",
    max_obs_age: float = 0.25,
    task: Mapping | None = None,
) -> ImportReport:
    """Append the recording in ``bag`` to the dataset at ``store_path`` (created if missing)
    as one episode. ``cameras`` maps camera name -> topic (Image or CompressedImage)."""
    bag = Path(bag)
    joint_names = tuple(joint_names)
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size {image_size!r} must be (height, width)") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"image_size ({h}, {w}) must be positive")
    if not (math.isfinite(dt) and dt >= 1e-3):
        raise ValueError(f"dt {dt} must be at least 0.001 s (the record period, in seconds)")
    if not (math.isfinite(max_obs_age) and max_obs_age > 0):
        raise ValueError(f"max_obs_age {max_obs_age} must be a positive number of seconds")
    dt_ns = round(dt * 1e9)
    topics = [*cameras.values(), joint_states_topic, action_topic]
    shared = sorted({t for t in topics if topics.count(t) > 1})
    if shared:
        raise ValueError(f"topics {shared} are given for more than one stream: each stream needs its own topic")

    reader = _open_reader(bag)
    try:
        wanted = {topic: (IMAGE, COMPRESSED) for topic in cameras.values()}
        wanted[joint_states_topic] = (JOINT_STATE,)
        wanted[action_topic] = (TRAJECTORY,)
        connections = _connections(reader, bag, wanted)
        with EpisodeStore.create(store_path, joint_names, {c: (h, w) for c in cameras}, dt, task=task) as store:
            writer = store.begin_episode()
            try:
                report = _replay(reader, connections, writer, bag, joint_names, cameras, (h, w), dt_ns, max_obs_age)
                report.episode = writer.commit()
            except BaseException:
                writer.discard()
                raise
    finally:
        reader.close()
    log.info("%s -> %s episode %d: %d of %d ticks stored", bag, store_path, report.episode, report.stored, report.ticks)
    return report


def _replay(reader, connections, writer, bag, joint_names, cameras, size, dt_ns, max_obs_age) -> ImportReport:
    """Push every message, sample every tick, stage the ready ones; the report (episode unset)."""
    dt = dt_ns / 1e9
    streams = [StreamSpec(c, max_obs_age) for c in cameras]
    streams += [StreamSpec(JOINTS, max_obs_age, interpolate=True), StreamSpec(ACTION, max_obs_age)]
    buffer = ObservationBuffer(streams, n_obs_steps=1, dt=dt)
    joint_state = _JointPicker(joint_names, "joint_states", ignore_foreign=True)
    trajectory = _JointPicker(joint_names, "trajectory", ignore_foreign=False)
    by_topic = {topic: cam for cam, topic in cameras.items()}
    decoders = {c.id: _image_decoder(c.msgtype) for t in cameras.values() for c in connections[t]}
    rejected: Counter[str] = Counter()
    drops: Counter[str] = Counter()
    decoded: dict[str, tuple[_Frame, np.ndarray]] = {}  # camera -> (message, resized RGB): reused across ticks
    warned: set[str] = set()
    ticks = 0
    stored_t: list[float] = []

    def reject(stream: str, reason: str) -> None:
        if not rejected[stream]:
            log.warning("%s: message rejected: %s (further rejections are only counted)", bag, reason)
        rejected[stream] += 1

    def sample(t_ns: int) -> None:
        nonlocal ticks
        ticks += 1
        t = _sec(t_ns)
        win = buffer.window(t, at=t)
        if not win.ready:
            key = "stale: " + ", ".join(win.stale)
            if not drops[key]:
                log.info("%s: tick %.3f dropped: %s", bag, t, "; ".join(win.reasons))
            drops[key] += 1
            return
        images = {}
        for cam in cameras:
            frame = win.values[cam][0]
            if cam not in decoded or decoded[cam][0] is not frame:
                try:
                    rgb = frame.decode(frame.msg)
                except ImageError as e:
                    drops[f"undecodable image: {cam}"] += 1
                    log.warning("%s: tick %.3f dropped: camera %s: %s", bag, t, cam, e)
                    return
                aspect = size[1] / size[0]
                if cam not in warned and abs(rgb.shape[1] / rgb.shape[0] - aspect) > 0.02 * aspect:
                    warned.add(cam)
                    log.warning("camera %s: %dx%d images are resized to %dx%d, which changes the aspect ratio",
                                cam, rgb.shape[1], rgb.shape[0], size[1], size[0])
                decoded[cam] = (frame, resize_rgb(rgb, *size))
            images[cam] = decoded[cam][1]
        writer.add(t, win.values[JOINTS][0], win.values[ACTION][0].at(t), images)
        stored_t.append(t)

    next_tick: int | None = None
    last_ns: int | None = None
    wanted = [c for conns in connections.values() for c in conns]
    try:
        for conn, log_ns, raw in reader.messages(connections=wanted):
            while next_tick is not None and log_ns > next_tick:
                sample(next_tick)
                next_tick += dt_ns
            last_ns = log_ns
            msg = reader.deserialize(raw, conn.msgtype)
            now = _sec(log_ns)
            if conn.topic in by_topic:
                stream, stamp, value = by_topic[conn.topic], _stamp_ns(msg.header), _Frame(decoders[conn.id], msg)
            elif conn.msgtype == JOINT_STATE:
                stream, stamp, value = JOINTS, _stamp_ns(msg.header), joint_state.pick(msg.name, msg.position)
            else:
                stream, stamp = ACTION, log_ns  # the controller takes a command over when it arrives
                value = _command(msg, trajectory, now, buffer)
            if value is None:
                continue
            reason = value if isinstance(value, str) else buffer.push(stream, _sec(stamp), value, now)
            if reason:
                reject(stream, reason)
            elif next_tick is None and all(s is not None for s in buffer.newest_stamps().values()):
                next_tick = log_ns  # the first tick: every stream has data
    except BAG_ERRORS as e:
        raise DatasetError(f"cannot read {bag} after log time {last_ns} ns: {e}") from None
    while next_tick is not None and next_tick <= last_ns:
        sample(next_tick)
        next_tick += dt_ns

    if not stored_t:
        why = ", ".join(f"{k} ({n})" for k, n in drops.items()) if ticks else (
            "no log time at which every stream had an accepted message"
            + (f"; rejected messages: {dict(rejected)}" if rejected else ""))
        raise DatasetError(f"{bag}: no tick could be stored ({why}); nothing was added to the dataset")
    return ImportReport(episode=-1, ticks=ticks, stored=len(stored_t), dropped=ticks - len(stored_t),
                        drop_reasons=dict(drops), duration_s=stored_t[-1] - stored_t[0], rejected=dict(rejected))


def format_report(r: ImportReport) -> str:
    lines = [f"episode {r.episode}: {r.stored} of {r.ticks} ticks stored ({r.duration_s:.2f} s), {r.dropped} dropped"]
    lines += [f"  dropped {n:6d}  {reason}" for reason, n in sorted(r.drop_reasons.items())]
    lines += [f"  rejected {n:5d}  messages on {stream}" for stream, n in sorted(r.rejected.items())]
    return "\n".join(lines)


# ---- command line ----

def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HEIGHTxWIDTH, for example 240x320") from None
    return h, w


def _camera(text: str) -> tuple[str, str]:
    name, sep, topic = text.partition("=")
    if not sep or not name or not topic:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=TOPIC, for example front=/front/image_raw")
    return name, topic


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", help="rosbag2 directory (or its .db3 / .mcap file): one episode")
    p.add_argument("--out", required=True, help="dataset directory; created if missing, appended to if it matches")
    p.add_argument("--joints", required=True, type=lambda s: [j for j in s.split(",") if j],
                   help="the arm's joints, comma-separated, in the dataset's order")
    p.add_argument("--camera", action="append", default=[], type=_camera, metavar="NAME=TOPIC",
                   help="a camera and its Image or CompressedImage topic (repeat per camera)")
    p.add_argument("--size", type=_size, default=(240, 320), metavar="HxW", help="stored image size (default 240x320)")
    p.add_argument("--dt", type=float, default=0.1, help="record period in seconds (default 0.1)")
    p.add_argument("--joint-states-topic", default="/joint_states", help="sensor_msgs/JointState topic")
    p.add_argument("--action-topic", default="/joint_trajectory_controller/joint_trajectory",
                   help="trajectory_msgs/JointTrajectory topic: the commanded joint targets")
    p.add_argument("--max-obs-age", type=float, default=0.25,
                   help="seconds; a stream older than this at a tick drops the tick (default 0.25)")
    p.add_argument("--task", default="", help="task description, or a JSON object, stored with a new dataset")


def run(args) -> int:
    try:
        cameras = dict(args.camera)
        if len(cameras) != len(args.camera):
            raise DatasetError(f"--camera names repeat: {[name for name, _ in args.camera]}")
        task = args.task.strip()
        try:
            task = json.loads(task) if task.startswith("{") else ({"description": task} if task else None)
        except json.JSONDecodeError as e:
            raise DatasetError(f"--task looks like JSON but is not: {e}") from None
        report = import_bag(args.bag, args.out, args.joints, cameras, args.size, dt=args.dt,
                            joint_states_topic=args.joint_states_topic, action_topic=args.action_topic,
                            max_obs_age=args.max_obs_age, task=task)
    except (ValueError, OSError) as e:  # DatasetError and ImageError are ValueErrors
        print(f"dp_ros dataset import-bag: {e}", file=sys.stderr)
        return 2
    print(f"{args.bag} -> {args.out}")
    print(format_report(report))
    return 0
