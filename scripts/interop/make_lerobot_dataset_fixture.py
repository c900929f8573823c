"""Regenerate the LeRobot dataset fixture (test/fixtures/interop/lerobot_dataset/) with LeRobot itself.

Runs in the LeRobot side environment (docs/interop.md says how), never in the project's:

    /path/to/lerobot-venv/bin/python scripts/interop/make_lerobot_dataset_fixture.py

Writes ``dataset/``, a small LeRobot v3.0 dataset made by ``LeRobotDataset.create``,
``add_frame`` and ``save_episode`` (LeRobot's own parquet, statistics and video
encoding), shaped like a SO-100 recording: 5 joint positions and actions with names, a
low-dimensional environment state, two cameras of different sizes stored as AV1 videos,
three episodes of different lengths and two tasks. ``frames.npz`` keeps what was given
to ``add_frame`` (the images before encoding, states, actions), so the import test can
compare the imported episodes with the source and report the codec's PSNR.
``dataset_images/`` is a second, smaller one with its camera stored as images (PNG in the
parquet files, LeRobot's ``use_videos=False``) under the single-camera name
``observation.image``, and a float64 state, as some older datasets have.
"""
from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "fixtures" / "interop" / "lerobot_dataset"
FPS = 10
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "gripper"]
CAMERAS = {"front": (48, 64), "wrist": (32, 40)}
LENGTHS = (14, 9, 11)
TASKS = ("pick the cube", "pick the cube", "push the cube left")


def image(t: int, h: int, w: int, phase: float) -> np.ndarray:
    """A smooth gradient with a bright square moving across it (codec friendly)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 200 + 20, y / h * 150 + 40, np.full_like(x, 90 + 40 * np.sin(phase + t / 4))], -1)
    cx = int((t * 3 + phase * 10) % max(1, w - 8))
    img[h // 3:h // 3 + 8, cx:cx + 8] = (240, 230, 60)
    return img.clip(0, 255).astype(np.uint8)


def images_dataset(rng) -> None:
    features = {"observation.state": {"dtype": "float64", "shape": (2,), "names": ["a", "b"]},
                "action": {"dtype": "float64", "shape": (2,), "names": ["a", "b"]},
                "observation.image": {"dtype": "image", "shape": (16, 24, 3), "names": ["height", "width", "channel"]}}
    ds = LeRobotDataset.create("dp_ros/fixture_images", 5, features, root=OUT / "dataset_images", use_videos=False)
    saved = {"state": [], "action": [], "image": []}
    for n in (4, 3):
        for t in range(n):
            frame = {"observation.state": rng.normal(0, 1, 2), "action": rng.normal(0, 1, 2),
                     "observation.image": image(t, 16, 24, phase=n), "task": "touch"}
            ds.add_frame(frame)
            for k, key in (("state", "observation.state"), ("action", "action"), ("image", "observation.image")):
                saved[k].append(frame[key])
        ds.save_episode()
    ds.finalize()
    np.savez_compressed(OUT / "frames_images.npz", **{k: np.stack(v) for k, v in saved.items()})


def main() -> None:
    rng = np.random.default_rng(0)
    features = {
        "observation.state": {"dtype": "float32", "shape": (len(JOINTS),), "names": JOINTS},
        "action": {"dtype": "float32", "shape": (len(JOINTS),), "names": JOINTS},
        "observation.environment_state": {"dtype": "float32", "shape": (3,), "names": ["x", "y", "yaw"]},
    }
    for cam, (h, w) in CAMERAS.items():
        features[f"observation.images.{cam}"] = {"dtype": "video", "shape": (h, w, 3),
                                                 "names": ["height", "width", "channels"]}
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    ds = LeRobotDataset.create("dp_ros/fixture_so100", FPS, features, robot_type="so100_follower",
                               root=OUT / "dataset", use_videos=True)
    saved: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ["state", "action", "env", *(f"image_{c}" for c in CAMERAS)]}
    for ep, (n, task) in enumerate(zip(LENGTHS, TASKS)):
        q = np.cumsum(rng.normal(0, 0.05, (n + 1, len(JOINTS))), 0).astype(np.float32)
        for t in range(n):
            frame = {"observation.state": q[t], "action": q[t + 1],
                     "observation.environment_state": rng.normal(0, 1, 3).astype(np.float32), "task": task}
            for cam, (h, w) in CAMERAS.items():
                frame[f"observation.images.{cam}"] = image(t, h, w, phase=ep + (cam == "wrist"))
            ds.add_frame(frame)
            saved["state"].append(frame["observation.state"])
            saved["action"].append(frame["action"])
            saved["env"].append(frame["observation.environment_state"])
            for cam in CAMERAS:
                saved[f"image_{cam}"].append(frame[f"observation.images.{cam}"])
        ds.save_episode()
    ds.finalize()
    images_dataset(rng)
    np.savez_compressed(OUT / "frames.npz", lengths=np.array(LENGTHS),
                        **{k: np.stack(v) for k, v in saved.items()})
    (OUT / "generated_by.json").write_text(json.dumps(
        {"lerobot": version("lerobot"), "av": version("av"), "pyarrow": version("pyarrow"),
         "script": "scripts/interop/make_lerobot_dataset_fixture.py"}, indent=1) + "\n")
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
