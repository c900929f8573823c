"""``dp_ros dataset info`` and ``dp_ros dataset view``: what a dataset holds, and what one episode looks like.

    dp_ros dataset info PATH [--json]
    dp_ros dataset view PATH --episode I [--out episode_I.png | FILE.mp4] [--every K]

The contact sheet (PNG) shows every K-th frame of each camera, titled with its frame
index and time, above one plot per joint of joint_pos and action against time.
The video (MP4, mp4v) plays every K-th frame of the cameras side by side in real time.
Errors (no dataset, no such episode, unknown output type) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from dp_ros.dataset.store import DatasetError, EpisodeStore

SHEET_COLUMNS = 8
SHEET_FRAMES_PER_CAMERA = 16  # the default --every for a PNG keeps at most this many


def add_info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset directory")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def run_info(args) -> int:
    try:
        with EpisodeStore.open(args.path) as store:
            info = dataset_info(store)
    except DatasetError as e:
        print(f"dp_ros dataset info: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def dataset_info(store: EpisodeStore) -> dict:
    """Everything ``info`` prints, as plain Python types."""
    stats = store.stats()
    frames = [e["frames"] for e in stats["episodes"]]
    spans = [e["duration_s"] for e in stats["episodes"]]
    span_total = sum(spans)
    return {
        "path": str(store.path),
        "format_version": store.attrs["format_version"],
        "created": store.attrs.get("created"),
        "dp_ros_version": store.attrs.get("dp_ros_version"),
        "joint_names": list(store.joint_names),
        "cameras": {c: list(store.image_shapes[c]) for c in store.camera_names},
        "states": dict(store.state_dims),
        "task": store.task,
        **stats,
        "duration_s": span_total,
        "length": {"min": min(frames), "mean": float(np.mean(frames)), "max": max(frames)} if frames else None,
        # frame intervals over time, all episodes pooled
        "measured_rate_hz": (sum(frames) - len(frames)) / span_total if span_total > 0 else None,
    }


def format_info(info: dict) -> str:
    rates = [e["rate_hz"] for e in info["episodes"] if e["rate_hz"] is not None]
    lines = [
        f"{info['path']}  (format {info['format_version']}, created {info['created']}, "
        f"dp_ros {info['dp_ros_version']})",
        f"episodes  {info['n_episodes']}   frames {info['n_frames']}   duration {info['duration_s']:.1f} s"
        "  (first to last frame, summed)",
    ]
    if info["length"]:
        n = info["length"]
        lines.append(f"length    min {n['min']}  mean {n['mean']:.1f}  max {n['max']} frames")
    measured = (f"{info['measured_rate_hz']:.2f} Hz measured" + (f" (episodes {min(rates):.2f}..{max(rates):.2f})")
                if info["measured_rate_hz"] else "not measurable")
    lines.append(f"rate      {measured}, nominal {info['nominal_rate_hz']:.2f} Hz (dt {info['dt']:g} s)")
    gappy = [e for e in info["episodes"] if e["gaps"]]
    if gappy:
        total = sum(len(e["gaps"]) for e in gappy)
        worst = max((g["seconds"], e["index"], g["after_frame"]) for e in gappy for g in e["gaps"])
        listed = ", ".join(f"{e['index']} ({len(e['gaps'])})" for e in gappy[:10]) + (" ..." if len(gappy) > 10 else "")
        lines.append(f"gaps      {total} in {len(gappy)} episodes (frames more than 1.5 dt apart: dropped ticks; "
                     f"training uses no window across one): episodes {listed}; largest {worst[0]:.3f} s in "
                     f"episode {worst[1]} after frame {worst[2]}")
    else:
        lines.append("gaps      none (no frames more than 1.5 dt apart)")
    cams = ", ".join(f"{c} {h}x{w}" for c, (h, w) in info["cameras"].items()) or "none"
    lines.append(f"cameras   {cams}  (H x W, uint8 RGB)")
    lines.append(f"joints    {', '.join(info['joint_names'])}")
    states = ", ".join(f"{k} ({d})" for k, d in info["states"].items()) or "none"
    lines.append(f"states    {states}  (key (dimensions), float32)")
    lines.append(f"task      {json.dumps(info['task'])}")
    if info["n_frames"]:
        lines += ["", f"{'':16}{'joint_pos':^44}{'action':^44}".rstrip(),
                  f"{'joint':16}" + 2 * "".join(f"{h:>11}" for h in ("min", "max", "mean", "std"))]
        for j, name in enumerate(info["joint_names"]):
            row = [info[key][stat][j] for key in ("joint_pos", "action") for stat in ("min", "max", "mean", "std")]
            lines.append(f"{name[:15]:16}" + "".join(f"{v:11.4g}" for v in row))
        for key, dim in info["states"].items():
            lines += ["", f"{key[:15]:16}" + "".join(f"{h:>11}" for h in ("min", "max", "mean", "std"))]
            for i in range(dim):
                row = [info[key][stat][i] for stat in ("min", "max", "mean", "std")]
                lines.append(f"{f'[{i}]':16}" + "".join(f"{v:11.4g}" for v in row))
    return "\n".join(lines)


def add_view_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset directory")
    p.add_argument("--episode", type=int, required=True, help="episode index (negative counts from the end)")
    p.add_argument("--out", default=None, help="FILE.png (contact sheet) or FILE.mp4 (video); default episode_<I>.png")
    p.add_argument("--every", type=int, default=None,
                   help=f"every K-th frame (default: PNG at most {SHEET_FRAMES_PER_CAMERA} frames per camera, MP4 all)")


def run_view(args) -> int:
    try:
        if args.every is not None and args.every < 1:
            raise DatasetError(f"--every {args.every} must be at least 1")
        with EpisodeStore.open(args.path) as store:
            episode = store.episode(args.episode)
            rows = store.episode_slice(args.episode)
            number = args.episode % store.n_episodes  # a negative index counts from the end
            out = Path(args.out or f"episode_{number}.png")
            if out.suffix.lower() == ".png":
                every = args.every or max(1, math.ceil(len(episode["timestamp"]) / SHEET_FRAMES_PER_CAMERA))
                write_contact_sheet(episode, store.camera_names, store.joint_names, number, every, out)
            elif out.suffix.lower() == ".mp4":
                write_video(episode, store.camera_names, number, args.every or 1, store.dt, out)
            else:
                raise DatasetError(f"--out {out}: write a .png (contact sheet) or an .mp4 (video)")
    except DatasetError as e:
        print(f"dp_ros dataset view: {e}", file=sys.stderr)
        return 2
    print(f"episode {number} (rows {rows.start}..{rows.stop - 1}) -> {out}")
    return 0


def write_contact_sheet(episode: dict, cameras, joint_names, number: int, every: int, out: Path) -> None:
    """Every ``every``-th frame of each camera in a grid, then joint_pos and action per joint."""
    from matplotlib.figure import Figure  # Agg through the figure's own canvas: no pyplot, no display

    t = episode["timestamp"] - episode["timestamp"][0]
    frames = np.arange(0, len(t), every)
    cols = min(SHEET_COLUMNS, len(frames))
    col_in = 16.0 / cols  # a 16-inch wide sheet
    heights = []
    for cam in cameras:
        h, w = episode[cam].shape[1:3]
        heights += [col_in * h / w + 0.3] * math.ceil(len(frames) / cols)  # + room for the title
    heights += [1.6] * len(joint_names)
    fig = Figure(figsize=(16, sum(heights) + 0.5), layout="constrained")
    fig.suptitle(f"episode {number}: {len(t)} frames, {t[-1]:.2f} s (one frame in {every} shown)")
    grid = fig.add_gridspec(len(heights), cols, height_ratios=heights)
    row = 0
    for cam in cameras:
        for k, f in enumerate(frames):
            ax = fig.add_subplot(grid[row + k // cols, k % cols])
            ax.imshow(episode[cam][f])
            ax.set_title(f"{cam} #{f}  t={t[f]:.2f} s", fontsize=8)
            ax.axis("off")
        row += math.ceil(len(frames) / cols)
    for j, name in enumerate(joint_names):
        ax = fig.add_subplot(grid[row + j, :])
        ax.plot(t, episode["joint_pos"][:, j], label="joint_pos")
        ax.plot(t, episode["action"][:, j], "--", label="action")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if j == 0:
            ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("time since the first frame (s)")
    try:
        fig.savefig(out, dpi=80)
    except OSError as e:
        raise DatasetError(f"cannot write {out}: {e.strerror or e}") from e


def write_video(episode: dict, cameras, number: int, every: int, dt: float, out: Path) -> None:
    """The cameras side by side, every ``every``-th frame, at real-time speed, with a text overlay."""
    import cv2

    if not cameras:
        raise DatasetError("this dataset has no cameras: write a .png to see the joint plots")
    t = episode["timestamp"] - episode["timestamp"][0]
    height = max(episode[c].shape[1] for c in cameras)
    width = sum(episode[c].shape[2] for c in cameras)
    size = (width + width % 2, height + height % 2)  # (W, H), even for the encoder
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 1.0 / (dt * every), size)
    if not writer.isOpened():
        raise DatasetError(f"cannot write {out}: OpenCV could not open an mp4v video writer there")
    scale = max(0.35, height / 600)
    try:
        for f in range(0, len(t), every):
            canvas = np.zeros((size[1], size[0], 3), np.uint8)  # (H, W, 3) BGR
            x = 0
            for cam in cameras:
                img = episode[cam][f]
                canvas[:img.shape[0], x:x + img.shape[1]] = img[..., ::-1]  # RGB -> BGR
                _text(canvas, cam, (x + 4, int(18 * scale / 0.5)), scale)
                x += img.shape[1]
            _text(canvas, f"episode {number}  frame {f}  t={t[f]:.2f} s", (4, size[1] - 6), scale)
            writer.write(canvas)
    finally:
        writer.release()


def _text(img: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    import cv2

    for color, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # outlined: readable on any background
        cv2.putText(img, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)
