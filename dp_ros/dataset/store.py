"""The demonstration dataset: a zarr store in diffusion_policy's replay-buffer layout.

    <path>/                     zarr format 2 group (a directory store)
      .zattrs                   format_version, joint_names, camera_names, image_shapes
                                ({cam: [H, W]}), state_dims ({key: D}; absent = none),
                                dt (s), task, created, dp_ros_version
      data/<camera>     uint8   (N, H, W, 3)  RGB, one frame per chunk, Blosc zstd bitshuffle
      data/joint_pos    float32 (N, J)
      data/<state key>  float32 (N, D)        further low-dim observations (object positions, ...)
      data/action       float32 (N, J)        the joint target commanded at that tick
      data/timestamp    float64 (N,)          ROS time of the record tick, seconds
      meta/episode_ends int64   (E,)          exclusive end index of each episode
      .staging/<uuid>/  (not zarr)            raw frames of the episode being recorded

Rows beyond ``episode_ends[-1]`` belong to no episode: readers ignore them.

Atomicity. ``add()`` appends each frame to raw, fixed-size-record files in the staging
directory (one per stream, written straight to the OS), so the zarr arrays are not
touched while recording. ``commit()`` appends the staged frames to the data arrays and,
as its last step, appends to ``meta/episode_ends``: an episode exists once, and only
once, its end is there. zarr writes every metadata and chunk file through a temporary
file and a rename, so each file is old or new, never torn. A crash therefore loses at
most the episode being recorded or committed; a writable open repairs what it left:
it truncates the data arrays back to ``episode_ends[-1]``, drops a torn last entry of
``episode_ends`` (resized but not yet written: it reads 0) and removes the staging
directories and zarr's ``*.partial`` temporary files. A read-only open changes nothing.

One process writes at a time: a writable store holds an exclusive ``flock`` on the
store directory (released by the kernel if the process dies), which is also what makes
it safe to delete every staging directory found on a writable open.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import math
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

import numcodecs
import numpy as np
import zarr

from dp_ros import __version__

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
LOWDIM_CHUNK_ROWS = 1024
ENDS_CHUNK = 1024
IMAGE_COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)
LOWDIM_COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)
STAGING_DIR = ".staging"
LOWDIM_KEYS = ("joint_pos", "action", "timestamp")
_CAMERA_NAME = re.compile(r"[A-Za-z0-9_]+")
_COMMIT_BLOCK_BYTES = 64 << 20  # images are copied from staging to zarr in blocks of this size


GAP_FACTOR = 1.5  # consecutive frames further apart than this many dt: a gap (dropped record ticks)


def find_gaps(timestamps: np.ndarray, dt: float, factor: float = GAP_FACTOR) -> np.ndarray:
    """Indices g (int64) where frames g and g+1 of one episode are more than ``factor * dt``
    apart: record ticks were dropped there, so the frames are not evenly spaced."""
    t = np.asarray(timestamps, dtype=np.float64)
    return np.flatnonzero(np.diff(t) > factor * dt).astype(np.int64)


class DatasetError(ValueError):
    """A dataset that cannot be created, opened or written; the message says what to do."""


def _write_all(fd: int, data) -> None:
    """os.write until every byte of ``data`` is written (the staging write; tests patch it)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


class _Staging:
    """The episode being recorded: one append-only raw file per stream, fixed-size records.

    Frame k of stream s is bytes [k*rec_s, (k+1)*rec_s) of ``<s>.bin``. A frame goes to
    every file or, if a write fails, every file is cut back to the previous frame.
    """

    def __init__(self, directory: Path, streams: Mapping[str, tuple[np.dtype, tuple[int, ...]]]):
        self.dir = directory
        self.streams = dict(streams)
        self.frames = 0
        directory.mkdir(parents=True)
        self._fds: dict[str, int] = {}
        try:
            for key in streams:
                self._fds[key] = os.open(directory / f"{key}.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
        except OSError:
            self.remove()
            raise

    def record_bytes(self, key: str) -> int:
        dtype, shape = self.streams[key]
        return dtype.itemsize * math.prod(shape)

    def append(self, records: Mapping[str, np.ndarray]) -> None:
        try:
            for key, fd in self._fds.items():
                _write_all(fd, records[key])
        except OSError:
            for key, fd in self._fds.items():
                os.ftruncate(fd, self.frames * self.record_bytes(key))
            raise
        self.frames += 1

    def read(self, key: str) -> np.ndarray:
        """The staged frames of one stream, memory-mapped: (frames, *shape)."""
        dtype, shape = self.streams[key]
        return np.memmap(self.dir / f"{key}.bin", dtype=dtype, mode="r", shape=(self.frames, *shape))

    def remove(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            self.dir.parent.rmdir()  # .staging itself, once empty (zarr 3 warns about it when listing)
        except OSError:
            pass


class EpisodeWriter:
    """Records one episode into staging; ``commit()`` adds it to the store, ``discard()`` drops it."""

    def __init__(self, store: EpisodeStore, staging: _Staging):
        self._store = store
        self._staging = staging
        self._last_t: float | None = None
        self._open = True

    @property
    def frames(self) -> int:
        return self._staging.frames

    def add(self, timestamp: float, joint_pos, action, images: Mapping[str, np.ndarray],
            states: Mapping[str, Any] | None = None) -> None:
        """Stage one frame; ``states`` holds a vector per state key of the store. A rejected
        frame (DatasetError naming the key) writes nothing."""
        self._check_open()
        records = self._validate(timestamp, joint_pos, action, images, states or {})
        try:
            self._staging.append(records)
        except OSError as e:
            raise DatasetError(
                f"could not write frame {self.frames} to {self._staging.dir}: {e.strerror or e} (disk full?); "
                f"the {self.frames} frames before it are kept: free space and add again, or discard()") from e
        self._last_t = float(records["timestamp"][0])

    def commit(self) -> int:
        """Append the staged frames to the store; returns the new episode's index.

        On failure the arrays are cut back, committed episodes are untouched and the
        episode stays staged: commit() again after freeing space, or discard() it.
        """
        self._check_open()
        if self.frames == 0:
            raise DatasetError("the episode has no frames: add() frames before commit(), or discard() it")
        index = self._store._commit_staged(self._staging)
        self._close()
        return index

    def discard(self) -> None:
        """Drop the staged frames. Safe to call on a committed or discarded writer (does nothing)."""
        if self._open:
            self._close()

    def _close(self) -> None:
        self._staging.remove()
        self._open = False
        self._store._writer = None

    def _check_open(self) -> None:
        if not self._open:
            raise DatasetError("this episode was already committed or discarded: call begin_episode() for a new one")

    def _validate(self, timestamp, joint_pos, action, images, states) -> dict[str, np.ndarray]:
        store = self._store
        try:
            t = float(timestamp)
        except (TypeError, ValueError):
            raise DatasetError(f"timestamp {timestamp!r} is not a number of seconds") from None
        if not math.isfinite(t):
            raise DatasetError(f"timestamp {t} is not finite")
        if self._last_t is not None and t <= self._last_t:
            raise DatasetError(f"timestamp {t!r} is not after the previous frame's {self._last_t!r}: "
                               "timestamps must increase within an episode")
        records = {"timestamp": np.array([t], np.float64)}
        if not isinstance(states, Mapping) or sorted(states) != sorted(store.state_dims):
            got = sorted(states) if isinstance(states, Mapping) else type(states).__name__
            raise DatasetError(f"states has keys {got}; the store records {sorted(store.state_dims)}")
        joints = f"one value per joint {list(store.joint_names)}"
        vectors = [(k, v, store.joint_names, joints) for k, v in (("joint_pos", joint_pos), ("action", action))]
        vectors += [(k, states[k], [f"{k}[{i}]" for i in range(d)], "its dimension")
                    for k, d in store.state_dims.items()]
        for key, value, names, what in vectors:
            try:
                with np.errstate(over="ignore"):
                    x = np.asarray(value, dtype=np.float32)
            except (TypeError, ValueError):
                raise DatasetError(f"{key} {value!r} is not an array of numbers") from None
            if x.shape != (len(names),):
                raise DatasetError(f"{key} has shape {x.shape}; expected ({len(names)},), {what}")
            bad = [names[i] for i in np.flatnonzero(~np.isfinite(x))]
            if bad:
                raise DatasetError(f"{key} is not finite (or out of float32 range) for {bad}")
            records[key] = np.ascontiguousarray(x)
        if not isinstance(images, Mapping):
            raise DatasetError("images must be a mapping camera name -> (H, W, 3) uint8 array, "
                               f"not {type(images).__name__}")
        missing = [c for c in store.camera_names if c not in images]
        unknown = [c for c in images if c not in store.image_shapes]
        if missing or unknown:
            raise DatasetError(f"images has cameras {sorted(images)}; the store records {list(store.camera_names)}"
                               + (f" (missing {missing})" if missing else "")
                               + (f" (unknown {unknown})" if unknown else ""))
        for cam in store.camera_names:
            img = images[cam]
            expected = (*store.image_shapes[cam], 3)
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.shape != expected:
                got = f"{img.shape} {img.dtype}" if isinstance(img, np.ndarray) else type(img).__name__
                raise DatasetError(f"image '{cam}' is {got}; expected {expected} uint8 (RGB)")
            records[cam] = np.ascontiguousarray(img)
        return records


class EpisodeStore:
    """A dataset of episodes: create() or open() one, read episodes, record new ones."""

    def __init__(self, path: Path, group: zarr.Group, writable: bool):
        """Use create() or open()."""
        self.path = path
        self.writable = writable
        self._writer: EpisodeWriter | None = None
        self._lock_fd: int | None = None
        self.attrs = attrs = dict(group.attrs)
        version = attrs.get("format_version")
        if version is None:
            raise DatasetError(f"{path} is a zarr group but not a dp_ros dataset (no format_version attribute)")
        if version != FORMAT_VERSION:
            raise DatasetError(f"{path} has format_version {version!r}; this dp_ros (version {__version__}) reads "
                               f"version {FORMAT_VERSION}: use a dp_ros release that matches the dataset")
        try:
            self.joint_names = tuple(attrs["joint_names"])
            self.camera_names = tuple(attrs["camera_names"])
            self.image_shapes = {c: (int(h), int(w)) for c, (h, w) in attrs["image_shapes"].items()}
            self.state_dims = {k: int(d) for k, d in (attrs.get("state_dims") or {}).items()}
            self.dt = float(attrs["dt"])
            self.task = dict(attrs.get("task") or {})
            self._data = {k: group[f"data/{k}"] for k in self._streams()}
            self._ends_array = group["meta/episode_ends"]
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"{path} is a damaged dp_ros dataset (missing or malformed {e}); "
                               "recreate it or restore a copy") from None
        for key, (dtype, shape) in self._streams().items():
            arr = self._data[key]
            if arr.dtype != dtype or tuple(arr.shape[1:]) != shape:
                raise DatasetError(f"{path} is a damaged dp_ros dataset: data/{key} is {arr.dtype} {arr.shape}, "
                                   f"expected {dtype} (N, {', '.join(map(str, shape))})")
        self._ends = self._committed_ends()

    # ---- creating and opening ----

    @classmethod
    def create(cls, path, joint_names: Sequence[str], cameras: Mapping[str, tuple[int, int]], dt: float,
               task: Mapping | None = None, exist_ok: bool = True,
               states: Mapping[str, int] | None = None) -> EpisodeStore:
        """Create a new store, or open an existing one for appending if its joint names,
        cameras (names and sizes), state keys (names and dimensions) and dt match. The
        returned store is writable."""
        path = Path(path)
        joint_names, shapes, dt = _validated_spec(joint_names, cameras, dt)
        states = _validated_states(states or {}, shapes)
        try:
            task = json.loads(json.dumps(dict(task or {})))
        except (TypeError, ValueError) as e:
            raise DatasetError(f"task metadata must be JSON-serialisable: {e}") from None
        if (path / ".zgroup").is_file():
            if not exist_ok:
                raise DatasetError(f"{path} already holds a dataset: choose a new path, "
                                   "or pass exist_ok=True to append to it")
            store = cls.open(path, writable=True)
            try:
                store._check_matches(joint_names, shapes, dt, states)
            except DatasetError:
                store.close()
                raise
            if task and task != store.task:
                log.warning("%s: keeping the stored task metadata %s; the one given (%s) differs",
                            path, store.task, task)
            return store
        if path.exists() and not (path.is_dir() and not any(path.iterdir())):
            raise DatasetError(f"{path} exists and is not a dp_ros dataset: choose another path")
        attrs = {
            "format_version": FORMAT_VERSION,
            "joint_names": list(joint_names),
            "camera_names": list(shapes),
            "image_shapes": {c: list(hw) for c, hw in shapes.items()},
            "state_dims": states,
            "dt": dt,
            "task": task,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "dp_ros_version": __version__,
        }
        # Build it under a temporary name and rename it into place: a crash never leaves
        # a half-created store under the final name.
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.creating")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            _write_empty_store(tmp, attrs, joint_names, shapes, states)
            os.replace(tmp, path)  # also replaces an empty directory
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DatasetError(f"cannot create a dataset at {path}: {e.strerror or e}; "
                               "choose a writable directory") from e
        log.info("created dataset %s (%d joints, cameras %s, states %s, dt %g s)", path, len(joint_names),
                 list(shapes), states, dt)
        return cls.open(path, writable=True)

    @classmethod
    def open(cls, path, writable: bool = False) -> EpisodeStore:
        """Open a store. Read-only changes nothing; writable takes the write lock and repairs
        what a crash left (see the module docstring)."""
        path = Path(path)
        if not path.exists():
            raise DatasetError(f"{path} does not exist: check the path (EpisodeStore.create() makes a new dataset)")
        lock_fd = _lock(path) if writable else None
        try:
            try:
                group = zarr.open_group(str(path), mode="r+" if writable else "r", zarr_format=2)
            except (OSError, ValueError, KeyError) as e:
                raise DatasetError(f"{path} is not a dp_ros dataset (no zarr format 2 group there: {e})") from None
            store = cls(path, group, writable)
            store._lock_fd = lock_fd
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        if writable:
            store._repair()
        return store

    def _check_matches(self, joint_names, shapes, dt, states) -> None:
        if tuple(joint_names) != self.joint_names:
            raise DatasetError(f"{self.path} was recorded with joints {list(self.joint_names)}, "
                               f"not {list(joint_names)}: record into a new dataset")
        if shapes != self.image_shapes:
            raise DatasetError(f"{self.path} was recorded with cameras {self.image_shapes} (H, W), not {shapes}: "
                               "record into a new dataset")
        if states != self.state_dims:
            raise DatasetError(f"{self.path} was recorded with state keys {self.state_dims} (dimensions), "
                               f"not {states}: record into a new dataset")
        if not math.isclose(dt, self.dt, rel_tol=1e-9):
            raise DatasetError(f"{self.path} was recorded with dt {self.dt} s, not {dt} s: record into a new dataset")

    # ---- reading ----

    @property
    def n_episodes(self) -> int:
        return len(self._ends)

    @property
    def n_frames(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def episode_ends(self) -> np.ndarray:
        return self._ends.copy()

    def episode_slice(self, i: int) -> slice:
        n = self.n_episodes
        if not -n <= i < n:
            raise DatasetError(f"episode {i} does not exist: {self.path} has {n} episodes"
                               + (f" (0..{n - 1}, or negative from the end)" if n else ""))
        i %= n
        return slice(int(self._ends[i - 1]) if i else 0, int(self._ends[i]))

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Episode i: {"joint_pos", "action", "timestamp", <camera>..., <state key>...}, each (T, ...)."""
        s = self.episode_slice(i)
        return {key: arr[s] for key, arr in self._data.items()}

    def stats(self) -> dict[str, Any]:
        """Episode lengths, durations (first to last frame), record rates and gaps (dropped
        ticks: ``find_gaps``); min/max/mean/std
        per dimension of joint_pos, action and each state key. Plain Python types (JSON-ready)."""
        n = self.n_frames
        t = self._data["timestamp"][:n]
        starts = np.concatenate([[0], self._ends[:-1]]).astype(int)
        episodes = []
        for i, (a, b) in enumerate(zip(starts, self._ends.astype(int))):
            span = float(t[b - 1] - t[a])
            gaps = find_gaps(t[a:b], self.dt)
            episodes.append({"index": i, "frames": int(b - a), "duration_s": span,
                             "rate_hz": float(b - a - 1) / span if span > 0 else None,
                             "gaps": [{"after_frame": int(g), "seconds": float(t[a + g + 1] - t[a + g])}
                                      for g in gaps]})
        out: dict[str, Any] = {"n_episodes": self.n_episodes, "n_frames": n, "dt": self.dt,
                               "nominal_rate_hz": 1.0 / self.dt, "episodes": episodes}
        for key in ("joint_pos", "action", *self.state_dims):
            x = self._data[key][:n].astype(np.float64)  # (N, D)
            out[key] = {name: getattr(x, name)(axis=0).tolist() if n else None
                        for name in ("min", "max", "mean", "std")}
        return out

    # ---- writing ----

    def begin_episode(self) -> EpisodeWriter:
        """Start recording an episode (one at a time per store)."""
        self._check_writable()
        if self._writer is not None:
            raise DatasetError("an episode is already being recorded: commit() or discard() it first")
        directory = self.path / STAGING_DIR / uuid.uuid4().hex
        try:
            staging = _Staging(directory, self._streams())
        except OSError as e:
            raise DatasetError(f"cannot start an episode in {directory}: {e.strerror or e} (disk full?)") from e
        self._writer = EpisodeWriter(self, staging)
        return self._writer

    def close(self) -> None:
        """Discard an episode still being recorded and release the write lock."""
        if self._writer is not None:
            log.warning("%s: closing with an uncommitted episode of %d frames: discarded",
                        self.path, self._writer.frames)
            self._writer.discard()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.writable = False

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_writable(self) -> None:
        if not self.writable:
            raise DatasetError(f"{self.path} is open read-only (or closed): open it with writable=True to record")

    def _commit_staged(self, staging: _Staging) -> int:
        start, count = self.n_frames, staging.frames
        try:
            for key, arr in self._data.items():
                rows = staging.read(key)  # (count, *shape), memory-mapped
                arr.resize((start + count, *arr.shape[1:]))
                step = max(1, _COMMIT_BLOCK_BYTES // rows[0].nbytes)
                for a in range(0, count, step):
                    arr[start + a:start + min(count, a + step)] = rows[a:a + step]
            self._append_episode_end(start + count)
        except Exception as e:
            self._truncate(len(self._ends), start)
            raise DatasetError(f"could not commit the episode to {self.path}: {e} (disk full?); the committed "
                               "episodes are intact and this one is still staged: free space and commit() "
                               "again, or discard() it") from e
        return self.n_episodes - 1

    def _append_episode_end(self, end: int) -> None:
        """The commit point: once this entry is written the episode exists."""
        e = len(self._ends)
        self._ends_array.resize((e + 1,))
        self._ends_array[e] = end
        self._ends = np.append(self._ends, np.int64(end))

    def _truncate(self, n_episodes: int, n_frames: int) -> None:
        """Cut episode_ends and the data arrays back (rollback and repair); best effort."""
        try:
            if self._ends_array.shape[0] > n_episodes:
                self._ends_array.resize((n_episodes,))
            for arr in self._data.values():
                if arr.shape[0] > n_frames:
                    arr.resize((n_frames, *arr.shape[1:]))
        except Exception as e:  # the next writable open tries again; readers ignore the extra rows
            log.error("%s: could not cut the arrays back to %d frames (%s); the next writable open repairs it",
                      self.path, n_frames, e)

    # ---- consistency ----

    @staticmethod
    def _streams_for(joint_names, shapes, states) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        j = len(joint_names)
        streams = {cam: (np.dtype(np.uint8), (h, w, 3)) for cam, (h, w) in shapes.items()}
        streams.update(joint_pos=(np.dtype(np.float32), (j,)), action=(np.dtype(np.float32), (j,)),
                       timestamp=(np.dtype(np.float64), ()))
        streams.update({k: (np.dtype(np.float32), (d,)) for k, d in states.items()})
        return streams

    def _streams(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        return self._streams_for(self.joint_names, self.image_shapes, self.state_dims)

    def _committed_ends(self) -> np.ndarray:
        """The longest prefix of episode_ends that is strictly increasing from > 0 and covered
        by every data array: an entry beyond it is a commit torn by a crash."""
        ends = np.asarray(self._ends_array[:], dtype=np.int64)
        rows = min(arr.shape[0] for arr in self._data.values())
        ok = (ends > np.concatenate([[0], ends[:-1]])) & (ends <= rows)
        k = int(np.argmin(ok)) if not ok.all() else len(ends)
        if k < len(ends):
            log.warning("%s: ignoring %d entries of meta/episode_ends torn by an interrupted commit (%s)",
                        self.path, len(ends) - k, ends[k:].tolist())
        return ends[:k]

    def _repair(self) -> None:
        """Undo what a crash left: torn episode_ends, rows beyond the last episode, staging
        directories and zarr's temporary files. Needs the write lock (no other writer)."""
        extra = max(arr.shape[0] for arr in self._data.values()) - self.n_frames
        if self._ends_array.shape[0] > self.n_episodes or extra > 0:
            log.warning("%s: truncating %d rows beyond the last committed episode (an interrupted commit)",
                        self.path, extra)
            self._truncate(self.n_episodes, self.n_frames)
        staging = self.path / STAGING_DIR
        if staging.is_dir():
            dirs = [d for d in staging.iterdir() if d.is_dir()]
            lost = sum(self._staged_frames(d) for d in dirs)
            log.warning("%s: removing %d unfinished episode(s) left by a crash: %d frames lost",
                        self.path, len(dirs), lost)
            shutil.rmtree(staging, ignore_errors=True)
        for dirpath, _dirs, files in os.walk(self.path):
            for name in files:
                if name.endswith(".partial"):
                    os.unlink(os.path.join(dirpath, name))

    def _staged_frames(self, directory: Path) -> int:
        sizes = []
        for key, (dtype, shape) in self._streams().items():
            f = directory / f"{key}.bin"
            sizes.append(f.stat().st_size // (dtype.itemsize * math.prod(shape)) if f.is_file() else 0)
        return min(sizes)


def _validated_spec(joint_names, cameras, dt) -> tuple[tuple[str, ...], dict[str, tuple[int, int]], float]:
    if isinstance(joint_names, str) or not all(isinstance(n, str) and n for n in joint_names):
        raise DatasetError(f"joint_names must be a sequence of non-empty strings, not {joint_names!r}")
    joint_names = tuple(joint_names)
    if not joint_names:
        raise DatasetError("joint_names is empty: name the joints recorded in joint_pos and action")
    if len(set(joint_names)) != len(joint_names):
        dup = sorted({n for n in joint_names if joint_names.count(n) > 1})
        raise DatasetError(f"joint_names repeats {dup}: each joint must appear once")
    if not isinstance(cameras, Mapping):
        raise DatasetError("cameras must be a mapping camera name -> (height, width)")
    shapes = {}
    for cam, hw in cameras.items():
        if not isinstance(cam, str) or not _CAMERA_NAME.fullmatch(cam) or cam in LOWDIM_KEYS:
            raise DatasetError(f"camera name {cam!r} is not allowed: use letters, digits and _, "
                               f"and none of {list(LOWDIM_KEYS)}")
        try:
            h, w = (int(v) for v in hw)
        except (TypeError, ValueError):
            raise DatasetError(f"camera '{cam}' size {hw!r} must be (height, width)") from None
        if h <= 0 or w <= 0:
            raise DatasetError(f"camera '{cam}' size ({h}, {w}) must be positive")
        shapes[cam] = (h, w)
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise DatasetError(f"dt {dt!r} must be a number of seconds") from None
    if not (math.isfinite(dt) and dt > 0):
        raise DatasetError(f"dt {dt} must be a positive number of seconds (the record period)")
    return joint_names, shapes, dt


def _validated_states(states, shapes) -> dict[str, int]:
    if not isinstance(states, Mapping):
        raise DatasetError("states must be a mapping state key -> dimension")
    out = {}
    for key, dim in states.items():
        if not isinstance(key, str) or not _CAMERA_NAME.fullmatch(key) or key in LOWDIM_KEYS or key in shapes:
            raise DatasetError(f"state key {key!r} is not allowed: use letters, digits and _, no camera name, "
                               f"and none of {list(LOWDIM_KEYS)}")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise DatasetError(f"state key '{key}' dimension {dim!r} must be a positive integer")
        out[key] = int(dim)
    return out


def _write_empty_store(directory: Path, attrs: dict, joint_names, shapes, states) -> None:
    root = zarr.create_group(store=str(directory), zarr_format=2, attributes=attrs)
    data = root.create_group("data")
    for key, (dtype, shape) in EpisodeStore._streams_for(joint_names, shapes, states).items():
        image = key in shapes
        data.create_array(key, shape=(0, *shape), dtype=dtype, fill_value=0,
                          chunks=(1, *shape) if image else (LOWDIM_CHUNK_ROWS, *shape),
                          compressors=IMAGE_COMPRESSOR if image else LOWDIM_COMPRESSOR)
    root.create_group("meta").create_array("episode_ends", shape=(0,), dtype=np.int64, fill_value=0,
                                           chunks=(ENDS_CHUNK,), compressors=None)


def _lock(path: Path) -> int:
    """An exclusive flock on the store directory (the kernel releases it if we die)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise DatasetError(f"cannot open {path} for writing: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise DatasetError(f"{path} is open for writing elsewhere (another process, or another EpisodeStore "
                               "here): close that one first, or open this one read-only") from None
        raise DatasetError(f"cannot lock {path} for writing: {e.strerror}") from None
    return fd
