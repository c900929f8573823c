"""LeRobot v3.0 datasets to and from dp_ros datasets: ``dp_ros dataset export-lerobot``
and ``dp_ros dataset import-lerobot``.

A LeRobot v3.0 dataset (the layout ``LeRobotDataset`` reads since LeRobot 0.4)::

    meta/info.json                              codebase_version "v3.0", fps, features, paths
    meta/stats.json                             per feature min/max/mean/std/count/q01..q99
    meta/tasks.parquet                          task_index, indexed by the task string (pandas)
    meta/episodes/chunk-000/file-000.parquet    one row per episode: length, its rows in the
                                                data files, each video's file and time span,
                                                its tasks and statistics
    data/chunk-000/file-000.parquet             one row per frame: observation.state, action,
                                                other vectors, timestamp, indices
    videos/<feature>/chunk-000/file-000.mp4     each camera's frames, episodes one after another

What maps to what (dp_ros -> LeRobot; the import is the inverse):

    joint_pos            observation.state             names: the dataset's joint names
    action               action                        (see "actions" below)
    <camera>             observation.images.<camera>   video (AV1 by default, as LeRobot)
    environment_state    observation.environment_state
    <state key>          observation.<state key>
    timestamp            ros_time (float64)            the recording's ROS time; LeRobot's own
                                                       ``timestamp`` is frame_index / fps

Actions. dp_ros files each joint target under the time the arm should reach it
(docs/timing.md): the target sent at t is the action of t + dt. LeRobot's record loop
files the action it sends at t next to the observation of t. ``--actions sent`` (the
default) converts between the two: exported, LeRobot's action of frame t is dp_ros's
action of t + 1 (the last frame repeats its own: the arm holds); imported, dp_ros's
action of row t is LeRobot's action of t - 1, and row 0's is the joint position of
row 0 (the arm holds where it starts). ``--actions target`` copies them as they are,
for datasets whose actions are already filed under their target times.

Parquet with pyarrow and video with PyAV (FFmpeg), not LeRobot's own dataset package:
LeRobot pins torch < 2.11 and pulls torchcodec, datasets, huggingface_hub and more,
and nothing here needs them. Both libraries are imported by this module only, never on
the policy node's path. Nothing is written until the whole conversion succeeded: the
output is built in a temporary sibling directory and renamed into place.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dp_ros import __version__
from dp_ros.dataset.store import DatasetError, EpisodeStore, find_gaps

CODEBASE_VERSION = "v3.0"
STATE = "observation.state"
ACTION = "action"
IMAGES = "observation.images."
ENV_FEATURE = "observation.environment_state"
ENV_KEY = "environment_state"
ROS_TIME = "ros_time"
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
IGNORED_PREFIXES = ("next.", "complementary_info.")
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"
VCODECS = ("libsvtav1", "libx264")  # AV1 (LeRobot's default) or H.264 (decodes faster on old machines)
VIDEO_TOLERANCE_S = 1e-4  # LeRobotDataset's default: a frame further than this from its query time is refused
IMAGE_STATS_FRAMES = 100  # per episode, evenly spaced (LeRobot also samples frames for image statistics)
IMAGE_STATS_SIDE = 150  # pixels on the longer side those frames are subsampled to (LeRobot's target too)


class LeRobotDatasetError(DatasetError):
    """A LeRobot dataset that cannot be read or written; names the file, feature and value."""


# ---------------------------------------------------------------------------
# statistics


def _vector_stats(x: np.ndarray) -> dict[str, Any]:
    """(N, D) -> LeRobot's per-dimension statistics (min and max keep an integer type, as LeRobot's)."""
    x = np.asarray(x)
    lo, hi = x.min(0), x.max(0)
    x = x.astype(np.float64)
    out = {"min": lo, "max": hi, "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
    for q in QUANTILES:
        out[f"q{round(q * 100):02d}"] = np.quantile(x, q, axis=0)
    return out


def _image_stats(frames: np.ndarray) -> dict[str, Any]:
    """(N, H, W, 3) uint8 -> per-channel statistics of values in [0, 1], shaped (3, 1, 1) as LeRobot's."""
    step = max(1, len(frames) // IMAGE_STATS_FRAMES)
    stride = max(1, round(max(frames.shape[1:3]) / IMAGE_STATS_SIDE))
    pixels = frames[::step, ::stride, ::stride].reshape(-1, 3).astype(np.float64) / 255.0
    stats = _vector_stats(pixels)
    stats = {k: (v.reshape(3, 1, 1) if k != "count" else np.array([len(frames)])) for k, v in stats.items()}
    return stats


def _pooled(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-episode statistics -> the dataset's: exact min, max, mean and std; quantiles
    as the count-weighted mean of the episodes' (LeRobot aggregates them the same way)."""
    n = np.array([float(p["count"][0]) for p in parts])
    w = (n / n.sum()).reshape(-1, *[1] * np.ndim(parts[0]["mean"]))
    means = np.stack([p["mean"] for p in parts])
    mean = (w * means).sum(0)
    var = (w * (np.stack([p["std"] for p in parts]) ** 2 + (means - mean) ** 2)).sum(0)
    out = {"min": np.min([p["min"] for p in parts], 0), "max": np.max([p["max"] for p in parts], 0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(n.sum())])}
    for k in parts[0]:
        if k.startswith("q"):
            out[k] = (w * np.stack([p[k] for p in parts])).sum(0)
    return out


def _jsonable(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict:
    return {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in stats.items()}


# ---------------------------------------------------------------------------
# video (PyAV)


def _av():
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration to stderr otherwise: errors only
    try:
        import av
    except ImportError:  # pragma: no cover - av is in requirements.txt
        raise LeRobotDatasetError("PyAV is not installed: pip install av (requirements.txt pins it)") from None
    return av


class _VideoWriter:
    """One camera's MP4: frames appended in order, frame k at k / fps."""

    def __init__(self, path: Path, fps: int, height: int, width: int, vcodec: str, crf: int, feature: str):
        av = _av()
        if height % 2 or width % 2:
            raise LeRobotDatasetError(
                f"{feature}: frames are {height}x{width}; yuv420p video needs an even height and width")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.feature, self.frames = path, feature, 0
        options = {"g": "2", "crf": str(crf)}
        if vcodec == "libsvtav1":
            options["preset"] = "12"  # LeRobot's default preset
        try:
            self._container = av.open(str(path), "w")
            self._stream = self._container.add_stream(vcodec, rate=fps, options=options)
        except (av.FFmpegError, ValueError) as e:
            raise LeRobotDatasetError(f"{feature}: cannot open a {vcodec} encoder: {e}") from None
        self._stream.pix_fmt = "yuv420p"
        self._stream.height, self._stream.width = height, width
        self._frame_type = av.VideoFrame
        self._key = av.video.frame.PictureType.I

    def add(self, frames: np.ndarray) -> None:
        """One episode's frames; its first is a key frame (LeRobot encodes each episode on its own)."""
        for i, img in enumerate(frames):
            frame = self._frame_type.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = self.frames
            if i == 0:
                frame.pict_type = self._key
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames += 1

    def close(self, quiet: bool = False) -> None:
        """Flush the encoder and close the file; ``quiet``: after another error, which
        stays the one reported (the file is thrown away with the rest)."""
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except Exception as e:
            if not quiet:
                raise LeRobotDatasetError(f"{self.feature}: could not finish {self.path}: {e}") from None


class VideoReader:
    """Frames of an MP4 by presentation time, read forward (seeking back only when asked
    for an earlier time): ``frame_at(t)`` is the frame within ``tolerance`` seconds of t."""

    def __init__(self, path: Path, tolerance: float = VIDEO_TOLERANCE_S):
        self.path, self.tolerance = Path(path), tolerance
        self._av = _av()
        self._open()

    def _open(self, seek: float | None = None) -> None:
        av = self._av
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
            if seek is not None and seek > 0:
                self._container.seek(int(seek / self._stream.time_base), stream=self._stream, backward=True)
        except (av.FFmpegError, IndexError, OSError) as e:
            raise LeRobotDatasetError(f"{self.path}: not a readable video: {e}") from None
        self._frames = self._container.decode(self._stream)
        self._current: tuple[float, Any] | None = None
        self._array: np.ndarray | None = None
        self._next: tuple[float, Any] | None = None

    def _advance(self) -> tuple[float, Any] | None:
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except self._av.FFmpegError as e:
            raise LeRobotDatasetError(f"{self.path}: the video is damaged: {e}") from None
        return float(frame.time), frame

    def frame_at(self, t: float) -> np.ndarray:
        tol = self.tolerance
        if self._current is not None and t < self._current[0] - tol:
            self.close()
            self._open(seek=t)
        while True:
            if self._next is None:
                self._next = self._advance()
                if self._next is None:
                    break
            if self._next[0] > t + tol:
                break
            self._current, self._array, self._next = self._next, None, None
        if self._current is None or abs(self._current[0] - t) > tol:
            near = f"the nearest frame before it is at {self._current[0]:.4f} s" if self._current else "none before it"
            raise LeRobotDatasetError(f"{self.path}: no frame within {tol:g} s of {t:.4f} s ({near}): "
                                      "the video is shorter than its episodes or not on the dataset's fps")
        if self._array is None:
            self._array = self._current[1].to_ndarray(format="rgb24")
        return self._array

    def close(self) -> None:
        self._container.close()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


# ---------------------------------------------------------------------------
# parquet (pyarrow)


def _pa():
    import pyarrow as pa
    import pyarrow.parquet as pq
    return pa, pq


def _vector_column(x: np.ndarray):
    pa, _ = _pa()
    x = np.ascontiguousarray(x, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def _hf_features(features: Mapping[str, dict], columns: Sequence[str]) -> bytes:
    """The ``huggingface`` schema metadata ``datasets`` writes next to its parquet files."""
    out = {}
    for name in columns:
        ft = features[name]
        value = {"dtype": ft["dtype"], "_type": "Value"}
        out[name] = value if list(ft["shape"]) == [1] else {"feature": value, "length": ft["shape"][0],
                                                            "_type": "List"}
    return json.dumps({"info": {"features": out}}).encode()


def _tasks_table(tasks: Sequence[str]):
    """tasks.parquet as pandas writes a DataFrame indexed by the task string (how LeRobot reads it)."""
    pa, _ = _pa()
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(list(tasks), pa.large_string())})
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                     "numpy_type": "int64", "metadata": None},
                    {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                     "numpy_type": "object", "metadata": None}],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _read_table(path: Path, what: str):
    pa, pq = _pa()
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise LeRobotDatasetError(f"{path} is missing: {what}") from None
    except (pa.ArrowException, OSError) as e:
        raise LeRobotDatasetError(f"{path} is not a readable parquet file ({what}): {e}") from None


# ---------------------------------------------------------------------------
# export


@dataclass
class ExportResult:
    path: Path
    lines: list[str]
    psnr: dict[str, tuple[float, float]] = field(default_factory=dict)  # camera -> (mean, min) dB


def _fps_of(dt: float) -> int:
    fps = round(1.0 / dt)
    if fps < 1 or abs(1.0 / dt - fps) > 1e-6 * fps:
        raise LeRobotDatasetError(f"the dataset's dt is {dt} s ({1.0 / dt:.6g} Hz); LeRobot stores the frame rate "
                                  "as a whole number of frames per second")
    return fps


def _lerobot_actions(action: np.ndarray, mode: str) -> np.ndarray:
    if mode == "target":
        return action
    return np.concatenate([action[1:], action[-1:]])  # sent at t = reached at t + dt


def _dp_ros_actions(action: np.ndarray, joint_pos: np.ndarray, mode: str) -> np.ndarray:
    if mode == "target":
        return action
    return np.concatenate([joint_pos[:1], action[:-1]])


def _state_feature(key: str) -> str:
    return ENV_FEATURE if key == ENV_KEY else f"observation.{key}"


def _task_text(store: EpisodeStore, given: str | None, repo_id: str) -> str:
    if given:
        return given
    task = store.task if isinstance(store.task, dict) else {}
    if isinstance(task.get("description"), str) and task["description"].strip():
        return task["description"].strip()
    return json.dumps(task, sort_keys=True) if task else repo_id.rsplit("/", 1)[-1]


def _new_output(out: Path, force: bool, is_ours, what: str) -> Path:
    """Checks ``out`` may be (re)placed (``is_ours``: holds the kind of dataset we write); returns
    the temporary sibling to build in."""
    if out.exists():
        empty = out.is_dir() and not any(out.iterdir())
        if not empty and not force:
            raise LeRobotDatasetError(f"{out} exists; choose a new directory (or --force to replace a dataset there)")
        if not empty and not is_ours(out):
            raise LeRobotDatasetError(f"{out} exists and is not a {what}; refusing to replace it")
    return out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")


def _is_store(path: Path) -> bool:
    return (path / ".zattrs").is_file() and (path / ".zgroup").is_file()


def _move_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def export_lerobot(src, out, repo_id: str, task: str | None = None, actions: str = "sent",
                   vcodec: str = "libsvtav1", crf: int = 30, force: bool = False,
                   robot_type: str | None = None) -> ExportResult:
    """Write the dp_ros dataset ``src`` as a LeRobot v3.0 dataset at ``out``."""
    src, out = Path(src), Path(out)
    if actions not in ("sent", "target"):
        raise LeRobotDatasetError(f"actions must be 'sent' or 'target', not {actions!r}")
    if vcodec not in VCODECS:
        raise LeRobotDatasetError(f"vcodec {vcodec!r} is not one of {list(VCODECS)}")
    if not repo_id or "/" not in repo_id.strip("/"):
        raise LeRobotDatasetError(f"--repo-id {repo_id!r} must look like USER/NAME (the hub repository id)")
    store = EpisodeStore.open(src)
    try:
        if store.n_episodes == 0:
            raise LeRobotDatasetError(f"{src} has no episodes: nothing to export")
        fps = _fps_of(store.dt)
        tmp = _new_output(out, force, lambda p: (p / "meta" / "info.json").is_file(), "LeRobot dataset")
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = _export(store, tmp, repo_id, _task_text(store, task, repo_id), actions, vcodec, crf, fps,
                             robot_type)
            _move_into_place(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        store.close()
    result.path = out
    return result


def _export(store: EpisodeStore, root: Path, repo_id: str, task: str, actions: str, vcodec: str, crf: int,
            fps: int, robot_type: str | None) -> ExportResult:
    pa, pq = _pa()
    J = len(store.joint_names)
    features: dict[str, dict] = {
        STATE: {"dtype": "float32", "shape": [J], "names": list(store.joint_names)},
        ACTION: {"dtype": "float32", "shape": [J], "names": list(store.joint_names)},
    }
    for key, dim in store.state_dims.items():
        features[_state_feature(key)] = {"dtype": "float32", "shape": [dim], "names": None}
    video_keys = {cam: IMAGES + cam for cam in store.camera_names}
    writers: dict[str, _VideoWriter] = {}
    for cam, key in video_keys.items():
        h, w = store.image_shapes[cam]
        writers[cam] = _VideoWriter(root / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0),
                                    fps, h, w, vcodec, crf, key)
    columns: dict[str, list[np.ndarray]] = {k: [] for k in (STATE, ACTION, *[_state_feature(s) for s in
                                                                                store.state_dims], ROS_TIME)}
    episodes: list[dict[str, Any]] = []
    ep_stats: list[dict[str, dict]] = []
    offgrid, gaps, start = 0.0, 0, 0
    try:
        for e in range(store.n_episodes):
            ep = store.episode(e)
            n = len(ep["timestamp"])
            rel = ep["timestamp"] - ep["timestamp"][0]
            offgrid = max(offgrid, float(np.max(np.abs(rel - np.arange(n) / fps))))
            gaps += len(find_gaps(ep["timestamp"], store.dt))
            act = _lerobot_actions(ep["action"], actions)
            values = {STATE: ep["joint_pos"], ACTION: act, ROS_TIME: ep["timestamp"][:, None]}
            values.update({_state_feature(k): ep[k] for k in store.state_dims})
            for k, v in values.items():
                columns[k].append(v)
            stats = {k: _vector_stats(v) for k, v in values.items()}
            for cam, key in video_keys.items():
                writers[cam].add(ep[cam])
                stats[key] = _image_stats(ep[cam])
            ts = np.arange(n) / fps
            stats.update(timestamp=_vector_stats(ts[:, None].astype(np.float32)),
                         frame_index=_vector_stats(np.arange(n)[:, None]),
                         episode_index=_vector_stats(np.full((n, 1), e)),
                         index=_vector_stats(np.arange(start, start + n)[:, None]),
                         task_index=_vector_stats(np.zeros((n, 1), np.int64)))
            row: dict[str, Any] = {"episode_index": e, "tasks": [task], "length": n,
                                   "data/chunk_index": 0, "data/file_index": 0,
                                   "dataset_from_index": start, "dataset_to_index": start + n}
            for key in video_keys.values():
                row.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                            f"videos/{key}/from_timestamp": start / fps,
                            f"videos/{key}/to_timestamp": (start + n) / fps})
            episodes.append(row)
            ep_stats.append(stats)
            start += n
    except BaseException:
        for w in writers.values():
            w.close(quiet=True)
        raise
    for w in writers.values():
        w.close()
    N = start
    features[ROS_TIME] = {"dtype": "float64", "shape": [1], "names": None}
    index_cols = {
        "timestamp": np.concatenate([np.arange(r["length"]) / fps for r in episodes]).astype(np.float32),
        "frame_index": np.concatenate([np.arange(r["length"]) for r in episodes]),
        "episode_index": np.concatenate([np.full(r["length"], r["episode_index"]) for r in episodes]),
        "index": np.arange(N), "task_index": np.zeros(N, np.int64)}
    arrays, names = [], []
    for k, parts in columns.items():
        x = np.concatenate(parts)
        arrays.append(pa.array(x[:, 0], pa.float64()) if k == ROS_TIME else _vector_column(x))
        names.append(k)
    for k, x in index_cols.items():
        arrays.append(pa.array(x, pa.float32() if k == "timestamp" else pa.int64()))
        names.append(k)
    for k in INDEX_FEATURES:
        features[k] = {"dtype": "float32" if k == "timestamp" else "int64", "shape": [1], "names": None}
    # LeRobot lists the camera features before the index columns; keep its order.
    for cam, key in video_keys.items():
        h, w = store.image_shapes[cam]
        features[key] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]}
    order = [k for k in features if k not in INDEX_FEATURES] + list(INDEX_FEATURES)
    features = {k: features[k] for k in order}
    table = pa.Table.from_arrays(arrays, names=names)
    table = table.replace_schema_metadata({b"huggingface": _hf_features(features, names)})
    data_path = root / DATA_PATH.format(chunk_index=0, file_index=0)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, data_path)

    # Per-episode rows with flattened statistics, then the dataset's statistics.
    for row, stats in zip(episodes, ep_stats):
        for f, s in stats.items():
            for k, v in s.items():
                row[f"stats/{f}/{k}"] = np.asarray(v).tolist()
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = 0, 0
    ep_path = root / EPISODES_FILE
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episodes), ep_path)
    pq.write_table(_tasks_table([task]), root / "meta" / "tasks.parquet")
    total = {f: _pooled([s[f] for s in ep_stats]) for f in ep_stats[0]}
    for k in list(columns):  # vectors: exact over the whole dataset
        total[k] = _vector_stats(np.concatenate(columns[k]))
    (root / "meta" / "stats.json").write_text(json.dumps(_jsonable(total), indent=4))

    # Video facts as LeRobot records them, probed from the written files; PSNR against the source.
    av = _av()
    lines = []
    psnrs: dict[str, tuple[float, float]] = {}
    for cam, key in video_keys.items():
        with av.open(str(writers[cam].path)) as c:
            cc = c.streams.video[0].codec_context
            codec, pix_fmt = cc.codec.canonical_name, cc.pix_fmt
        h, w = store.image_shapes[cam]
        features[key]["info"] = {"video.height": h, "video.width": w, "video.codec": codec,
                                 "video.pix_fmt": pix_fmt, "video.is_depth_map": False, "video.fps": fps,
                                 "video.channels": 3, "has_audio": False}
        psnrs[cam] = _video_psnr(store, cam, writers[cam].path, fps)
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type,
            "total_episodes": store.n_episodes, "total_frames": N, "total_tasks": 1,
            "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
            "fps": fps, "splits": {"train": f"0:{store.n_episodes}"},
            "data_path": DATA_PATH, "video_path": VIDEO_PATH if video_keys else None, "features": features,
            "dp_ros": {"version": __version__, "actions": actions, "source_dt": store.dt,
                       "joint_names": list(store.joint_names), "task": store.task}}
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))

    lines.append(f"{store.n_episodes} episodes, {N} frames at {fps} fps, task {task!r}, repo id {repo_id}")
    lines.append(f"observation.state/action names: {list(store.joint_names)}; actions: {actions}"
                 + (" (LeRobot's action of frame t = dp_ros's action of t + 1)" if actions == "sent" else ""))
    for k in store.state_dims:
        lines.append(f"  {k} -> {_state_feature(k)}")
    for cam, (mean, low) in psnrs.items():
        lines.append(f"  {cam} -> {video_keys[cam]}: {features[video_keys[cam]]['info']['video.codec']} video, "
                     f"PSNR {mean:.1f} dB mean, {low:.1f} dB worst frame")
    lines.append(f"timestamps: frame_index / fps; ROS stamps kept as {ROS_TIME} (largest distance from the "
                 f"{fps} fps grid: {offgrid * 1000:.1f} ms)")
    if gaps:
        lines.append(f"warning: {gaps} gaps (dropped record ticks) in the source: LeRobot assumes frames exactly "
                     f"1/{fps} s apart, so time stretches there")
    return ExportResult(root, lines, psnrs)


def _video_psnr(store: EpisodeStore, cam: str, path: Path, fps: int) -> tuple[float, float]:
    reader = VideoReader(path)
    values, k = [], 0
    try:
        for e in range(store.n_episodes):
            for img in store.episode(e)[cam]:
                values.append(psnr(reader.frame_at(k / fps), img))
                k += 1
    finally:
        reader.close()
    finite = [v for v in values if math.isfinite(v)] or [99.0]
    return float(np.mean(finite)), float(min(finite))


# ---------------------------------------------------------------------------
# import


@dataclass
class _Plan:
    fps: int
    state: str
    action: str
    joint_names: tuple[str, ...]
    cameras: dict[str, str]  # feature -> dp_ros camera name
    camera_kind: dict[str, str]  # feature -> "video" | "image"
    camera_shapes: dict[str, tuple[int, int]]  # feature -> source (H, W)
    states: dict[str, str]  # feature -> dp_ros state key
    state_dims: dict[str, int]  # dp_ros state key -> dim
    ignored: list[str]
    ros_time: bool


def _sanitize(name: str) -> str:
    import re
    out = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_")
    return out or "camera"


def read_info(root: Path) -> dict:
    path = root / "meta" / "info.json"
    if not path.is_file():
        if (root / "meta" / "info.jsonl").is_file() or (root / "meta" / "episodes.jsonl").is_file():
            raise LeRobotDatasetError(f"{root} is a LeRobot v2 dataset: convert it to v3.0 first with LeRobot's "
                                      "lerobot.datasets.v30.convert_dataset_v21_to_v30")
        raise LeRobotDatasetError(f"{path} is missing: {root} is not a LeRobot dataset")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LeRobotDatasetError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(info, dict):
        raise LeRobotDatasetError(f"{path} is not a JSON object")
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        hint = (" (a v2 dataset: convert it with lerobot.datasets.v30.convert_dataset_v21_to_v30)"
                if str(version).startswith("v2") else "")
        raise LeRobotDatasetError(f"{path}: codebase_version = {version!r} is not supported: this reads "
                                  f"{CODEBASE_VERSION}{hint}")
    for key in ("fps", "features", "total_episodes", "data_path"):
        if key not in info:
            raise LeRobotDatasetError(f"{path}: {key} is missing")
    if not isinstance(info["features"], dict):
        raise LeRobotDatasetError(f"{path}: features is not an object")
    return info


def _image_hw(feature: str, ft: dict) -> tuple[int, int]:
    shape, names = list(ft.get("shape", [])), ft.get("names") or []
    if len(shape) != 3:
        raise LeRobotDatasetError(f"{feature}: shape = {shape!r} is not an image's (3 dimensions)")
    if list(names)[:1] in (["channels"], ["channel"]) or (shape[0] == 3 and shape[2] != 3):
        c, h, w = shape
    else:
        h, w, c = shape
    if c != 3:
        raise LeRobotDatasetError(f"{feature}: {c} channels is not supported: dp_ros records RGB images")
    return int(h), int(w)


def _plan(info: dict, joint_names: str | None, ignore: Sequence[str], where: str) -> _Plan:
    feats = info["features"]
    fps = info["fps"]
    if not isinstance(fps, (int, float)) or fps <= 0:
        raise LeRobotDatasetError(f"{where}: fps = {fps!r} is not a positive frame rate")
    unknown_ignores = [k for k in ignore if k not in feats]
    if unknown_ignores:
        raise LeRobotDatasetError(f"--ignore {unknown_ignores}: no such feature; the dataset has {sorted(feats)}")
    for key in (STATE, ACTION):
        if key not in feats:
            raise LeRobotDatasetError(f"{where}: no {key} feature: dp_ros needs the joint positions "
                                      f"({STATE}) and joint targets ({ACTION})")
    dims = {}
    for key in (STATE, ACTION):
        ft = feats[key]
        shape = list(ft.get("shape", []))
        if ft.get("dtype") not in ("float32", "float64") or len(shape) != 1:
            raise LeRobotDatasetError(f"{where}: {key} is {ft.get('dtype')} {shape}: expected a float vector")
        dims[key] = shape[0]
    if dims[STATE] != dims[ACTION]:
        raise LeRobotDatasetError(
            f"{where}: {STATE} has {dims[STATE]} values but {ACTION} {dims[ACTION]}: dp_ros records joint "
            "positions and joint targets of the same joints (an end-effector or velocity action cannot be "
            "imported)")
    J = dims[ACTION]
    names = feats[ACTION].get("names") or feats[STATE].get("names")
    if isinstance(names, dict):  # older datasets: {"motors": [...]}
        names = next(iter(names.values()), None)
    if joint_names:
        names = [s.strip() for s in joint_names.split(",") if s.strip()]
        if len(names) != J:
            raise LeRobotDatasetError(f"--joint-names gives {len(names)} names; {ACTION} has {J} values")
    elif not (isinstance(names, list) and len(names) == J and all(isinstance(n, str) and n for n in names)):
        names = [f"joint_{i + 1}" for i in range(J)]
    cameras, kinds, shapes, states, dims_out, ignored = {}, {}, {}, {}, {}, list(ignore)
    for key, ft in feats.items():
        if key in (STATE, ACTION, ROS_TIME, *INDEX_FEATURES) or key in ignore:
            continue
        dtype = ft.get("dtype")
        if key.startswith(IGNORED_PREFIXES):
            ignored.append(key)
        elif dtype in ("video", "image"):
            if (ft.get("info") or {}).get("video.is_depth_map"):
                raise LeRobotDatasetError(f"{where}: {key} is a depth map: dp_ros records RGB; pass --ignore {key}")
            name = _sanitize(key[len(IMAGES):] if key.startswith(IMAGES) else key.removeprefix("observation."))
            cameras[key], kinds[key], shapes[key] = name, dtype, _image_hw(key, ft)
        elif key.startswith("observation.") and dtype in ("float32", "float64") and len(ft.get("shape", [])) == 1:
            states[key] = ENV_KEY if key == ENV_FEATURE else _sanitize(key[len("observation."):])
            dims_out[states[key]] = int(ft["shape"][0])
        else:
            raise LeRobotDatasetError(f"{where}: feature {key!r} ({dtype} {list(ft.get('shape', []))}) has no "
                                      f"place in a dp_ros dataset; pass --ignore {key} to leave it out")
    taken = list(cameras.values()) + list(states.values())
    dup = sorted({n for n in taken if taken.count(n) > 1} | {n for n in taken if n in ("joint_pos", "action",
                                                                                        "timestamp")})
    if dup:
        raise LeRobotDatasetError(f"{where}: features map to the same dp_ros name {dup}: pass --ignore for one")
    return _Plan(int(round(fps)), STATE, ACTION, tuple(names), cameras, kinds, shapes, states, dims_out,
                 ignored, ROS_TIME in feats)


def _episodes(root: Path) -> list[dict[str, Any]]:
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise LeRobotDatasetError(f"{root / 'meta' / 'episodes'} has no episode files: the dataset is incomplete")
    rows = []
    for f in files:
        table = _read_table(f, "the episode index")
        cols = [c for c in table.column_names if not c.startswith("stats/")]
        rows += table.select(cols).to_pylist()
    for need in ("episode_index", "dataset_from_index", "dataset_to_index"):
        if rows and need not in rows[0]:
            raise LeRobotDatasetError(f"{files[0]}: column {need} is missing")
    return sorted(rows, key=lambda r: r["episode_index"])


def _frames(root: Path, info: dict, episodes: list[dict]):
    """The data files' rows, ordered by ``index``."""
    pa, _ = _pa()
    keys = sorted({(int(r.get("data/chunk_index", 0)), int(r.get("data/file_index", 0))) for r in episodes})
    tables = []
    for c, f in keys:
        try:
            rel = info["data_path"].format(chunk_index=c, file_index=f)
        except (KeyError, IndexError, ValueError) as e:
            raise LeRobotDatasetError(f"info.json: data_path = {info['data_path']!r} cannot be formatted: {e}") \
                from None
        tables.append(_read_table(root / rel, "frames of the dataset"))
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except pa.ArrowException as e:
        raise LeRobotDatasetError(f"{root / 'data'}: the data files do not share one schema: {e}") from None
    for col in ("index", "episode_index"):
        if col not in table.column_names:
            raise LeRobotDatasetError(f"{root / 'data'}: column {col} is missing")
    return table.sort_by("index")


def _column(table, name: str, n_dims: int | None, where: str) -> np.ndarray:
    if name not in table.column_names:
        raise LeRobotDatasetError(f"{where}: column {name} is missing from the data files")
    col = table.column(name).combine_chunks()
    try:
        if n_dims is None:
            return col.to_numpy(zero_copy_only=False)
        flat = col.flatten().to_numpy(zero_copy_only=False) if len(col) else np.zeros(0)
        x = np.asarray(flat, np.float64).reshape(len(col), -1)
    except (ValueError, TypeError) as e:
        raise LeRobotDatasetError(f"{where}: column {name} is not a vector column: {e}") from None
    if x.shape[1] != n_dims or col.null_count:
        raise LeRobotDatasetError(f"{where}: column {name} has {x.shape[1]} values per row "
                                  f"(and {col.null_count} empty rows); info.json says {n_dims}")
    return x


def _task_names(root: Path) -> list[str]:
    path = root / "meta" / "tasks.parquet"
    if not path.is_file():
        return []
    table = _read_table(path, "the task list")
    meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}") or b"{}")
    index = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    for col in index + ["task", "__index_level_0__"]:
        if col in table.column_names:
            order = table.column("task_index").to_pylist() if "task_index" in table.column_names else None
            names = [str(s) for s in table.column(col).to_pylist()]
            if order is not None:
                names = [n for _, n in sorted(zip(order, names))]
            return names
    return []


class _Images:
    """The cameras' images of the source's rows: video frames by time, or image bytes in the data files."""

    def __init__(self, src: Path, info: dict, plan: _Plan, cells: dict[str, np.ndarray], index: np.ndarray,
                 sizes: dict[str, tuple[int, int]]):
        self.src, self.info, self.plan, self.cells, self.index, self.sizes = src, info, plan, cells, index, sizes
        self.readers: dict[Path, VideoReader] = {}

    def at(self, episode: dict, row: int, t: float) -> dict[str, np.ndarray]:
        from dp_ros.imaging import ImageError, decode_compressed, resize_rgb

        out = {}
        for key, cam in self.plan.cameras.items():
            try:
                if self.plan.camera_kind[key] == "video":
                    img = self._video(key, episode).frame_at(float(episode[f"videos/{key}/from_timestamp"]) + t)
                else:
                    cell = self.cells[key][row]
                    data = cell.get("bytes") if isinstance(cell, dict) else None
                    if not data:
                        raise LeRobotDatasetError(f"{self.src}: {key} of frame {self.index[row]} has no image bytes")
                    img = decode_compressed("png", data)
                if img.shape[:2] != self.plan.camera_shapes[key]:
                    raise LeRobotDatasetError(f"{self.src}: {key} frame {self.index[row]} is {img.shape[:2]}; "
                                              f"info.json says {self.plan.camera_shapes[key]}")
                out[cam] = resize_rgb(img, *self.sizes[cam])
            except (ImageError, KeyError) as e:
                raise LeRobotDatasetError(f"{self.src}: {key} of frame {self.index[row]}: {e}") from None
        return out

    def _video(self, key: str, episode: dict) -> VideoReader:
        rel = self.info.get("video_path") or VIDEO_PATH
        path = self.src / rel.format(video_key=key, chunk_index=int(episode[f"videos/{key}/chunk_index"]),
                                     file_index=int(episode[f"videos/{key}/file_index"]))
        if path not in self.readers:
            if not path.is_file():
                raise LeRobotDatasetError(f"{path} is missing: the video of {key}")
            self.readers[path] = VideoReader(path)
        return self.readers[path]

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()


@dataclass
class ImportResult:
    path: Path
    lines: list[str]


def import_lerobot(src, out, joint_names: str | None = None, actions: str = "sent",
                   size: tuple[int, int] | None = None, ignore: Sequence[str] = (),
                   force: bool = False) -> ImportResult:
    """Convert the LeRobot v3.0 dataset ``src`` into a new dp_ros dataset at ``out``."""
    src, out = Path(src), Path(out)
    if actions not in ("sent", "target"):
        raise LeRobotDatasetError(f"actions must be 'sent' or 'target', not {actions!r}")
    _new_output(out, force, _is_store, "dp_ros dataset")  # refuse before reading anything
    info = read_info(src)
    plan = _plan(info, joint_names, ignore, str(src / "meta" / "info.json"))
    if abs(info["fps"] - plan.fps) > 1e-9:
        raise LeRobotDatasetError(f"{src}: fps = {info['fps']!r} is not a whole number")
    episodes = _episodes(src)
    if not episodes:
        raise LeRobotDatasetError(f"{src} has no episodes")
    table = _frames(src, info, episodes)
    where = str(src / "data")
    index = _column(table, "index", None, where).astype(np.int64)
    ep_col = _column(table, "episode_index", None, where).astype(np.int64)
    stamps = _column(table, "timestamp", None, where).astype(np.float64)
    state = _column(table, STATE, len(plan.joint_names), where)
    action = _column(table, ACTION, len(plan.joint_names), where)
    extra = {plan.states[k]: _column(table, k, plan.state_dims[plan.states[k]], where) for k in plan.states}
    ros_time = _column(table, ROS_TIME, None, where).astype(np.float64) if plan.ros_time else None
    cells = {k: _column(table, k, None, where) for k, kind in plan.camera_kind.items() if kind == "image"}
    pos = {int(i): r for r, i in enumerate(index)}
    stored_shapes = {plan.cameras[k]: (size or hw) for k, hw in plan.camera_shapes.items()}
    task_names = _task_names(src)
    episode_tasks = [list(r.get("tasks") or []) for r in episodes]
    unique_tasks = list(dict.fromkeys(t for ts in episode_tasks for t in ts)) or task_names
    ours = info.get("dp_ros") if isinstance(info.get("dp_ros"), dict) else {}  # written by export-lerobot
    task = dict(ours["task"]) if isinstance(ours.get("task"), dict) else {}
    task.setdefault("description", unique_tasks[0] if len(unique_tasks) == 1 else "; ".join(unique_tasks))
    task["lerobot"] = {"source": str(src.resolve()), "robot_type": info.get("robot_type"), "fps": info["fps"],
                       "tasks": unique_tasks, "actions": actions}

    tmp = _new_output(out, force, _is_store, "dp_ros dataset")
    out.parent.mkdir(parents=True, exist_ok=True)
    images = _Images(src, info, plan, cells, index, stored_shapes)
    frames_total = 0
    try:
        store = EpisodeStore.create(tmp, plan.joint_names, stored_shapes, 1.0 / plan.fps, task=task,
                                    exist_ok=False, states=plan.state_dims)
        with store:
            for r in episodes:
                e = int(r["episode_index"])
                a, b = int(r["dataset_from_index"]), int(r["dataset_to_index"])
                rows = [pos.get(i) for i in range(a, b)]
                if b <= a or any(x is None for x in rows) or not np.all(ep_col[rows] == e):
                    raise LeRobotDatasetError(f"{src}: episode {e} spans rows {a}..{b - 1}, which the data files "
                                              "do not hold (or hold for another episode): the dataset is damaged")
                t_rel = stamps[rows]
                t_store = ros_time[rows] if ros_time is not None else t_rel
                q, act = state[rows], _dp_ros_actions(action[rows], state[rows], actions)
                writer = store.begin_episode()
                try:
                    for j, row in enumerate(rows):
                        writer.add(t_store[j], q[j], act[j], images.at(r, row, float(t_rel[j])),
                                   states={k: v[row] for k, v in extra.items()})
                except BaseException:
                    writer.discard()
                    raise
                writer.commit()
                frames_total += len(rows)
        _move_into_place(tmp, out)
    except KeyError as e:  # a column the episode index should have
        raise LeRobotDatasetError(f"{src}: the episode index has no {e}") from None
    finally:
        images.close()
        shutil.rmtree(tmp, ignore_errors=True)

    lines = [f"{len(episodes)} episodes, {frames_total} frames at {plan.fps} fps -> {out}",
             f"  {STATE} -> joint_pos, {ACTION} -> action, joints {list(plan.joint_names)}"
             + (" (placeholders: rename with --joint-names to your arm's /joint_states names)"
                if plan.joint_names[0] == "joint_1" and not joint_names else ""),
             f"  actions: {actions}" + (" (dp_ros's action of row t = LeRobot's action of t - 1; row 0's = its "
                                        "joint positions)" if actions == "sent" else " (copied as they are)")]
    for key, cam in plan.cameras.items():
        h, w = stored_shapes[cam]
        lines.append(f"  {key} -> camera {cam} ({h}x{w})")
    for key, name in plan.states.items():
        lines.append(f"  {key} -> state {name} ({plan.state_dims[name]})")
    lines.append("  timestamps: " + (f"{ROS_TIME} (the ROS stamps it was recorded with)" if plan.ros_time
                                     else "LeRobot's timestamp (seconds from each episode's start)"))
    for key in plan.ignored:
        lines.append(f"  {key}: not imported")
    lines.append(f"task: {task['description']!r}")
    return ImportResult(out, lines)


# ---------------------------------------------------------------------------
# CLI


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h > 0 and w > 0:
            return h, w
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"size {text!r} must be HEIGHTxWIDTH, e.g. 240x320")


def add_export_lerobot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="dp_ros dataset directory")
    p.add_argument("--out", required=True, help="LeRobot dataset directory to write (must not exist, or --force)")
    p.add_argument("--repo-id", required=True,
                   help="the dataset's hub id, USER/NAME (LeRobotDataset(repo_id, root=OUT))")
    p.add_argument("--task", default=None,
                   help="task string of every episode (default: the dataset's task description)")
    p.add_argument("--actions", choices=("sent", "target"), default="sent",
                   help="sent (default): file each action at the frame it is sent, as LeRobot records; "
                        "target: as dp_ros files them, at the frame it should be reached (docs/interop.md)")
    p.add_argument("--vcodec", choices=VCODECS, default="libsvtav1", help="video encoder (default AV1, as LeRobot)")
    p.add_argument("--crf", type=int, default=30, help="video quality, lower is better (default 30, LeRobot's)")
    p.add_argument("--robot-type", default=None, help="info.json robot_type, e.g. so100_follower")
    p.add_argument("--force", action="store_true", help="replace a LeRobot dataset at --out")


def run_export_lerobot(args) -> int:
    try:
        result = export_lerobot(args.src, args.out, args.repo_id, task=args.task, actions=args.actions,
                                vcodec=args.vcodec, crf=args.crf, force=args.force, robot_type=args.robot_type)
    except DatasetError as e:
        print(f"dp_ros dataset export-lerobot: {e}", file=sys.stderr)
        return 2
    for line in result.lines:
        print(line)
    print(f"LeRobot dataset: {result.path}")
    return 0


def add_import_lerobot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="LeRobot v3.0 dataset directory (meta/info.json, data/, videos/)")
    p.add_argument("--out", required=True, help="dp_ros dataset directory to write (must not exist, or --force)")
    p.add_argument("--joint-names", default=None,
                   help="comma-separated joint names for the action vector, as on /joint_states "
                        "(default: the dataset's names for action)")
    p.add_argument("--actions", choices=("sent", "target"), default="sent",
                   help="sent (default): the dataset files each action at the frame it was sent, as LeRobot's "
                        "recorder does; target: at the frame it should be reached (docs/interop.md)")
    p.add_argument("--size", type=_size, default=None, metavar="HxW",
                   help="store every camera at this size (default: the dataset's)")
    p.add_argument("--ignore", action="append", default=[], metavar="FEATURE",
                   help="leave a feature out (repeatable); features dp_ros has no place for are refused otherwise")
    p.add_argument("--force", action="store_true", help="replace a dp_ros dataset at --out")


def run_import_lerobot(args) -> int:
    try:
        result = import_lerobot(args.src, args.out, joint_names=args.joint_names, actions=args.actions,
                                size=args.size, ignore=args.ignore, force=args.force)
    except DatasetError as e:
        print(f"dp_ros dataset import-lerobot: {e}", file=sys.stderr)
        return 2
    for line in result.lines:
        print(line)
    return 0

