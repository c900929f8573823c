"""``dp_ros dataset export-lerobot``: a dp_ros dataset as a LeRobot v3.0 dataset that
``LeRobotDataset(repo_id, root=OUT)`` loads (docs/interop.md).

What maps to what (the import, ``lerobot_import``, is the inverse):

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

Nothing is written until the whole conversion succeeded: the output is built in a
temporary sibling directory and renamed into place.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dp_ros import __version__
from dp_ros.dataset.store import EpisodeStore, find_gaps
from dp_ros.interop.lerobot_format import (
    CODEBASE_VERSION, DATA_PATH, EPISODES_FILE, INDEX_FEATURES, ROS_TIME, VCODECS, VIDEO_PATH, LeRobotDatasetError,
    VideoReader, VideoWriter, hf_features_metadata, image_stats, jsonable, move_into_place, new_output,
    pooled_stats, psnr, pyarrow_modules, pyav, tasks_table, vector_column, vector_stats,
)
from dp_ros.interop.names import ACTION, ENV_FEATURE, ENV_KEY, IMAGES, STATE

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


def lerobot_actions(action: np.ndarray, mode: str) -> np.ndarray:
    if mode == "target":
        return action
    return np.concatenate([action[1:], action[-1:]])  # sent at t = reached at t + dt


def dp_ros_actions(action: np.ndarray, joint_pos: np.ndarray, mode: str) -> np.ndarray:
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
        tmp = new_output(out, force, lambda p: (p / "meta" / "info.json").is_file(), "LeRobot dataset")
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = _export(store, tmp, repo_id, _task_text(store, task, repo_id), actions, vcodec, crf, fps,
                             robot_type)
            move_into_place(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        store.close()
    result.path = out
    return result


def _export(store: EpisodeStore, root: Path, repo_id: str, task: str, actions: str, vcodec: str, crf: int,
            fps: int, robot_type: str | None) -> ExportResult:
    pa, pq = pyarrow_modules()
    J = len(store.joint_names)
    features: dict[str, dict] = {
        STATE: {"dtype": "float32", "shape": [J], "names": list(store.joint_names)},
        ACTION: {"dtype": "float32", "shape": [J], "names": list(store.joint_names)},
    }
    for key, dim in store.state_dims.items():
        features[_state_feature(key)] = {"dtype": "float32", "shape": [dim], "names": None}
    video_keys = {cam: IMAGES + cam for cam in store.camera_names}
    writers: dict[str, VideoWriter] = {}
    for cam, key in video_keys.items():
        h, w = store.image_shapes[cam]
        writers[cam] = VideoWriter(root / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0),
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
            act = lerobot_actions(ep["action"], actions)
            values = {STATE: ep["joint_pos"], ACTION: act, ROS_TIME: ep["timestamp"][:, None]}
            values.update({_state_feature(k): ep[k] for k in store.state_dims})
            for k, v in values.items():
                columns[k].append(v)
            stats = {k: vector_stats(v) for k, v in values.items()}
            for cam, key in video_keys.items():
                writers[cam].add(ep[cam])
                stats[key] = image_stats(ep[cam])
            ts = np.arange(n) / fps
            stats.update(timestamp=vector_stats(ts[:, None].astype(np.float32)),
                         frame_index=vector_stats(np.arange(n)[:, None]),
                         episode_index=vector_stats(np.full((n, 1), e)),
                         index=vector_stats(np.arange(start, start + n)[:, None]),
                         task_index=vector_stats(np.zeros((n, 1), np.int64)))
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
        arrays.append(pa.array(x[:, 0], pa.float64()) if k == ROS_TIME else vector_column(x))
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
    table = table.replace_schema_metadata({b"huggingface": hf_features_metadata(features, names)})
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
    pq.write_table(tasks_table([task]), root / "meta" / "tasks.parquet")
    total = {f: pooled_stats([s[f] for s in ep_stats]) for f in ep_stats[0]}
    for k in list(columns):  # vectors: exact over the whole dataset
        total[k] = vector_stats(np.concatenate(columns[k]))
    (root / "meta" / "stats.json").write_text(json.dumps(jsonable(total), indent=4))

    # Video facts as LeRobot records them, probed from the written files; PSNR against the source.
    av = pyav()
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
