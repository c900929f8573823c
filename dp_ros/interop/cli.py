"""``dp_ros import lerobot`` and ``dp_ros import diffusion-policy``."""
from __future__ import annotations

import argparse
import sys

from dp_ros.interop.common import InteropError, check_out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="checkpoint directory to write (must not exist, or --force)")
    p.add_argument("--fps", type=float, required=True,
                   help="the control rate the policy was trained at (its dataset's frame rate, e.g. 10); "
                        "the policy files do not store it")
    p.add_argument("--joint-names", default=None,
                   help="comma-separated joint names in the order of the action vector (default: placeholders "
                        "joint_1..N, which the node refuses to drive until they match the arm)")
    p.add_argument("--force", action="store_true", help="replace an existing checkpoint at --out")


def add_lerobot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="a LeRobot diffusion policy directory (config.json, model.safetensors and, "
                               "from LeRobot 0.4, the policy_preprocessor/postprocessor files)")
    _common(p)


def add_diffusion_policy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ckpt", help="a reference diffusion_policy workspace checkpoint (.ckpt); read as data, "
                                "nothing in it is executed")
    _common(p)
    p.add_argument("--no-ema", action="store_true", help="take the trained weights even when EMA weights exist")


def _finish(prog: str, convert) -> int:
    from dp_ros.interop.common import write

    try:
        policy, metadata, report, out = convert()
        path = write(policy, out, metadata)
    except InteropError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    for line in report:
        print(line)
    print(f"checkpoint: {path}")
    return 0


def run_lerobot(args) -> int:
    from dp_ros.interop.lerobot_policy import import_lerobot

    def convert():
        out = check_out(args.out, args.force)
        return (*import_lerobot(args.src, args.fps, args.joint_names), out)
    return _finish("dp_ros import lerobot", convert)


def run_diffusion_policy(args) -> int:
    from dp_ros.interop.reference_policy import import_reference

    def convert():
        out = check_out(args.out, args.force)
        return (*import_reference(args.ckpt, args.fps, args.joint_names, ema=not args.no_ema), out)
    return _finish("dp_ros import diffusion-policy", convert)
