"""Load a ``dp_ros dataset export-lerobot`` output with LeRobot itself and compare every frame
with the dp_ros dataset it came from. Runs in the LeRobot side environment (docs/interop.md):

    /path/to/lerobot-venv/bin/python scripts/interop/check_lerobot_export.py DP_ROS_DATASET EXPORT \
        [--repo-id USER/NAME] [--actions sent|target]

``LeRobotDataset(repo_id, root=EXPORT)`` reads the metadata, the parquet rows and (with
torchcodec) the video frames; the script checks episode boundaries, timestamps, states,
actions (with the alignment the export used), tasks and statistics, and prints the
PSNR of LeRobot's decoded frames against the dp_ros images. Exits 1 on any mismatch.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from dp_ros.dataset.store import EpisodeStore  # noqa: E402
from dp_ros.interop.lerobot_format import psnr  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("export")
    p.add_argument("--repo-id", default="dp_ros/export_check")
    p.add_argument("--actions", choices=("sent", "target"), default="sent")
    args = p.parse_args()
    from importlib.metadata import version

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    store = EpisodeStore.open(args.dataset)
    ds = LeRobotDataset(args.repo_id, root=args.export)
    problems: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    check(ds.num_episodes == store.n_episodes, f"episodes {ds.num_episodes} vs {store.n_episodes}")
    check(ds.num_frames == store.n_frames, f"frames {ds.num_frames} vs {store.n_frames}")
    check(abs(1.0 / ds.fps - store.dt) < 1e-9, f"fps {ds.fps} vs dt {store.dt}")
    psnrs: dict[str, list[float]] = {c: [] for c in store.camera_names}
    worst = {"state": 0.0, "action": 0.0, "states": 0.0, "timestamp": 0.0}
    for e in range(store.n_episodes):
        ep = store.episode(e)
        meta = ds.meta.episodes[e]
        start = int(meta["dataset_from_index"])
        n = len(ep["timestamp"])
        check(int(meta["dataset_to_index"]) - start == n, f"episode {e} length")
        actions = ep["action"] if args.actions == "target" else np.concatenate([ep["action"][1:], ep["action"][-1:]])
        for k in range(n):
            item = ds[start + k]
            check(int(item["episode_index"]) == e and int(item["frame_index"]) == k, f"episode {e} frame {k} index")
            worst["timestamp"] = max(worst["timestamp"], abs(float(item["timestamp"]) - k * store.dt))
            state = item["observation.state"].numpy()
            worst["state"] = max(worst["state"], float(np.abs(state - ep["joint_pos"][k]).max()))
            worst["action"] = max(worst["action"], float(np.abs(item["action"].numpy() - actions[k]).max()))
            for key in store.state_dims:
                feature = "observation.environment_state" if key == "environment_state" else f"observation.{key}"
                worst["states"] = max(worst["states"], float(np.abs(item[feature].numpy() - ep[key][k]).max()))
            for cam in store.camera_names:
                img = (item[f"observation.images.{cam}"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                psnrs[cam].append(psnr(img, ep[cam][k]))
            check(isinstance(item["task"], str) and item["task"], f"episode {e} frame {k} task")
    check(worst["state"] == 0 and worst["action"] == 0 and worst["states"] == 0, f"values differ: {worst}")
    check(worst["timestamp"] < 1e-4, f"timestamps off the fps grid by {worst['timestamp']}")
    stats = ds.meta.stats
    for key in ("observation.state", "action", *[f"observation.images.{c}" for c in store.camera_names]):
        check(key in stats and {"min", "max", "mean", "std", "count"} <= set(stats[key]), f"stats of {key}")
    print(f"lerobot {version('lerobot')}: LeRobotDataset loaded {ds.num_episodes} episodes, {ds.num_frames} frames "
          f"at {ds.fps} fps; tasks {list(ds.meta.tasks.index)}")
    print(f"largest differences: state {worst['state']}, action {worst['action']} ({args.actions}), "
          f"other states {worst['states']}, timestamp {worst['timestamp']:.2g} s")
    for cam, values in psnrs.items():
        finite = [v for v in values if math.isfinite(v)] or [math.inf]
        print(f"{cam}: PSNR of LeRobot's decoded frames {np.mean(finite):.1f} dB mean, {min(finite):.1f} dB worst")
    for problem in problems:
        print(f"MISMATCH: {problem}")
    print("OK" if not problems else f"{len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
