"""``dp_ros dataset import-lerobot``: a LeRobot v3.0 dataset (a SO-100 recording, say) as a
new dp_ros dataset for ``dp_ros train``. The mapping and the actions' alignment are
``lerobot_export``'s, inverted (docs/interop.md). Video frames are decoded at each
row's time; image features stored in the parquet files (PNG) losslessly. The store is
built in a temporary sibling directory and renamed into place: nothing half-written.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dp_ros.dataset.store import EpisodeStore
from dp_ros.interop.lerobot_export import dp_ros_actions
from dp_ros.interop.lerobot_format import (
    IGNORED_PREFIXES, INDEX_FEATURES, ROS_TIME, VIDEO_PATH, LeRobotDatasetError, VideoReader, column, is_store,
    move_into_place, new_output, read_episodes, read_frames, read_info, task_names,
)
from dp_ros.interop.names import ACTION, STATE, lerobot_camera, lerobot_state

@dataclass
class _Plan:
    fps: int
    joint_names: tuple[str, ...]
    cameras: dict[str, str]  # feature -> dp_ros camera name
    camera_kind: dict[str, str]  # feature -> "video" | "image"
    camera_shapes: dict[str, tuple[int, int]]  # feature -> source (H, W)
    states: dict[str, str]  # feature -> dp_ros state key
    state_dims: dict[str, int]  # dp_ros state key -> dim
    ignored: list[str]
    ros_time: bool


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
            name = lerobot_camera(key)
            cameras[key], kinds[key], shapes[key] = name, dtype, _image_hw(key, ft)
        elif key.startswith("observation.") and dtype in ("float32", "float64") and len(ft.get("shape", [])) == 1:
            states[key] = lerobot_state(key)
            dims_out[states[key]] = int(ft["shape"][0])
        else:
            raise LeRobotDatasetError(f"{where}: feature {key!r} ({dtype} {list(ft.get('shape', []))}) has no "
                                      f"place in a dp_ros dataset; pass --ignore {key} to leave it out")
    taken = list(cameras.values()) + list(states.values())
    dup = sorted({n for n in taken if taken.count(n) > 1} | {n for n in taken if n in ("joint_pos", "action",
                                                                                        "timestamp")})
    if dup:
        raise LeRobotDatasetError(f"{where}: features map to the same dp_ros name {dup}: pass --ignore for one")
    return _Plan(int(round(fps)), tuple(names), cameras, kinds, shapes, states, dims_out,
                 ignored, ROS_TIME in feats)


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
    new_output(out, force, is_store, "dp_ros dataset")  # refuse before reading anything
    info = read_info(src)
    plan = _plan(info, joint_names, ignore, str(src / "meta" / "info.json"))
    if abs(info["fps"] - plan.fps) > 1e-9:
        raise LeRobotDatasetError(f"{src}: fps = {info['fps']!r} is not a whole number")
    episodes = read_episodes(src)
    if not episodes:
        raise LeRobotDatasetError(f"{src} has no episodes")
    table = read_frames(src, info, episodes)
    where = str(src / "data")
    index = column(table, "index", None, where).astype(np.int64)
    ep_col = column(table, "episode_index", None, where).astype(np.int64)
    stamps = column(table, "timestamp", None, where).astype(np.float64)
    state = column(table, STATE, len(plan.joint_names), where)
    action = column(table, ACTION, len(plan.joint_names), where)
    extra = {plan.states[k]: column(table, k, plan.state_dims[plan.states[k]], where) for k in plan.states}
    ros_time = column(table, ROS_TIME, None, where).astype(np.float64) if plan.ros_time else None
    cells = {k: column(table, k, None, where) for k, kind in plan.camera_kind.items() if kind == "image"}
    pos = {int(i): r for r, i in enumerate(index)}
    stored_shapes = {plan.cameras[k]: (size or hw) for k, hw in plan.camera_shapes.items()}
    listed = task_names(src)
    episode_tasks = [list(r.get("tasks") or []) for r in episodes]
    unique_tasks = list(dict.fromkeys(t for ts in episode_tasks for t in ts)) or listed
    ours = info.get("dp_ros") if isinstance(info.get("dp_ros"), dict) else {}  # written by export-lerobot
    task = dict(ours["task"]) if isinstance(ours.get("task"), dict) else {}
    task.setdefault("description", unique_tasks[0] if len(unique_tasks) == 1 else "; ".join(unique_tasks))
    task["lerobot"] = {"source": str(src.resolve()), "robot_type": info.get("robot_type"), "fps": info["fps"],
                       "tasks": unique_tasks, "actions": actions}

    tmp = new_output(out, force, is_store, "dp_ros dataset")
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
                q, act = state[rows], dp_ros_actions(action[rows], state[rows], actions)
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
        move_into_place(tmp, out)
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
