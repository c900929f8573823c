"""The LeRobot v3.0 dataset format, read and written with pyarrow (parquet) and PyAV
(video): statistics as LeRobot keeps them, each camera's MP4, the parquet tables and
their metadata, reading the index files, and placing an output directory only once it is
complete. Used by ``lerobot_export`` and ``lerobot_import``; docs/interop.md.

    meta/info.json                              codebase_version "v3.0", fps, features, paths
    meta/stats.json                             per feature min/max/mean/std/count/q01..q99
    meta/tasks.parquet                          task_index, indexed by the task string (pandas)
    meta/episodes/chunk-000/file-000.parquet    one row per episode: length, its rows in the
                                                data files, each video's file and time span,
                                                its tasks and statistics
    data/chunk-000/file-000.parquet             one row per frame: observation.state, action,
                                                other vectors, timestamp, indices
    videos/<feature>/chunk-000/file-000.mp4     each camera's frames, episodes one after another

Parquet with pyarrow and video with PyAV (FFmpeg), not LeRobot's own dataset package:
LeRobot pins torch < 2.11 and pulls torchcodec, datasets, huggingface_hub and more,
and nothing here needs them. Both are imported by the interop package only, never on the
policy node's path.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dp_ros.dataset.store import DatasetError

CODEBASE_VERSION = "v3.0"
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


def vector_stats(x: np.ndarray) -> dict[str, Any]:
    """(N, D) -> LeRobot's per-dimension statistics (min and max keep an integer type, as LeRobot's)."""
    x = np.asarray(x)
    lo, hi = x.min(0), x.max(0)
    x = x.astype(np.float64)
    out = {"min": lo, "max": hi, "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
    for q in QUANTILES:
        out[f"q{round(q * 100):02d}"] = np.quantile(x, q, axis=0)
    return out


def image_stats(frames: np.ndarray) -> dict[str, Any]:
    """(N, H, W, 3) uint8 -> per-channel statistics of values in [0, 1], shaped (3, 1, 1) as LeRobot's."""
    step = max(1, len(frames) // IMAGE_STATS_FRAMES)
    stride = max(1, round(max(frames.shape[1:3]) / IMAGE_STATS_SIDE))
    pixels = frames[::step, ::stride, ::stride].reshape(-1, 3).astype(np.float64) / 255.0
    stats = vector_stats(pixels)
    stats = {k: (v.reshape(3, 1, 1) if k != "count" else np.array([len(frames)])) for k, v in stats.items()}
    return stats


def pooled_stats(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
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


def jsonable(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict:
    return {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in stats.items()}


# ---------------------------------------------------------------------------
# video (PyAV)


def pyav():
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration to stderr otherwise: errors only
    try:
        import av
    except ImportError:  # pragma: no cover - av is in requirements.txt
        raise LeRobotDatasetError("PyAV is not installed: pip install av (requirements.txt pins it)") from None
    return av


class VideoWriter:
    """One camera's MP4: frames appended in order, frame k at k / fps."""

    def __init__(self, path: Path, fps: int, height: int, width: int, vcodec: str, crf: int, feature: str):
        av = pyav()
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
        self._av = pyav()
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


def pyarrow_modules():
    import pyarrow as pa
    import pyarrow.parquet as pq
    return pa, pq


def vector_column(x: np.ndarray):
    pa, _ = pyarrow_modules()
    x = np.ascontiguousarray(x, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def hf_features_metadata(features: Mapping[str, dict], columns: Sequence[str]) -> bytes:
    """The ``huggingface`` schema metadata ``datasets`` writes next to its parquet files."""
    out = {}
    for name in columns:
        ft = features[name]
        value = {"dtype": ft["dtype"], "_type": "Value"}
        out[name] = value if list(ft["shape"]) == [1] else {"feature": value, "length": ft["shape"][0],
                                                            "_type": "List"}
    return json.dumps({"info": {"features": out}}).encode()


def tasks_table(tasks: Sequence[str]):
    """tasks.parquet as pandas writes a DataFrame indexed by the task string (how LeRobot reads it)."""
    pa, _ = pyarrow_modules()
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


def read_table(path: Path, what: str):
    pa, pq = pyarrow_modules()
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise LeRobotDatasetError(f"{path} is missing: {what}") from None
    except (pa.ArrowException, OSError) as e:
        raise LeRobotDatasetError(f"{path} is not a readable parquet file ({what}): {e}") from None


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


def read_episodes(root: Path) -> list[dict[str, Any]]:
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise LeRobotDatasetError(f"{root / 'meta' / 'episodes'} has no episode files: the dataset is incomplete")
    rows = []
    for f in files:
        table = read_table(f, "the episode index")
        cols = [c for c in table.column_names if not c.startswith("stats/")]
        rows += table.select(cols).to_pylist()
    for need in ("episode_index", "dataset_from_index", "dataset_to_index"):
        if rows and need not in rows[0]:
            raise LeRobotDatasetError(f"{files[0]}: column {need} is missing")
    return sorted(rows, key=lambda r: r["episode_index"])


def read_frames(root: Path, info: dict, episodes: list[dict]):
    """The data files' rows, ordered by ``index``."""
    pa, _ = pyarrow_modules()
    keys = sorted({(int(r.get("data/chunk_index", 0)), int(r.get("data/file_index", 0))) for r in episodes})
    tables = []
    for c, f in keys:
        try:
            rel = info["data_path"].format(chunk_index=c, file_index=f)
        except (KeyError, IndexError, ValueError) as e:
            raise LeRobotDatasetError(f"info.json: data_path = {info['data_path']!r} cannot be formatted: {e}") \
                from None
        tables.append(read_table(root / rel, "frames of the dataset"))
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except pa.ArrowException as e:
        raise LeRobotDatasetError(f"{root / 'data'}: the data files do not share one schema: {e}") from None
    for col in ("index", "episode_index"):
        if col not in table.column_names:
            raise LeRobotDatasetError(f"{root / 'data'}: column {col} is missing")
    return table.sort_by("index")


def column(table, name: str, n_dims: int | None, where: str) -> np.ndarray:
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


def task_names(root: Path) -> list[str]:
    path = root / "meta" / "tasks.parquet"
    if not path.is_file():
        return []
    table = read_table(path, "the task list")
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


# ---------------------------------------------------------------------------
# the output directory


def new_output(out: Path, force: bool, is_ours, what: str) -> Path:
    """Checks ``out`` may be (re)placed (``is_ours``: holds the kind of dataset we write); returns
    the temporary sibling to build in."""
    if out.exists():
        empty = out.is_dir() and not any(out.iterdir())
        if not empty and not force:
            raise LeRobotDatasetError(f"{out} exists; choose a new directory (or --force to replace a dataset there)")
        if not empty and not is_ours(out):
            raise LeRobotDatasetError(f"{out} exists and is not a {what}; refusing to replace it")
    return out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")


def is_store(path: Path) -> bool:
    return (path / ".zattrs").is_file() and (path / ".zgroup").is_file()


def move_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
