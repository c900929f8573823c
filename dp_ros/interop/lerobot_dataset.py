"""``dp_ros dataset export-lerobot`` and ``dp_ros dataset import-lerobot``: arguments and
output. The conversions are ``lerobot_export`` and ``lerobot_import`` (docs/interop.md),
imported when a command runs."""
from __future__ import annotations

import argparse
import sys

from dp_ros.dataset.store import DatasetError
from dp_ros.interop.lerobot_format import VCODECS


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
    from dp_ros.interop.lerobot_export import export_lerobot

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
    from dp_ros.interop.lerobot_import import import_lerobot

    try:
        result = import_lerobot(args.src, args.out, joint_names=args.joint_names, actions=args.actions,
                                size=args.size, ignore=args.ignore, force=args.force)
    except DatasetError as e:
        print(f"dp_ros dataset import-lerobot: {e}", file=sys.stderr)
        return 2
    for line in result.lines:
        print(line)
    return 0
