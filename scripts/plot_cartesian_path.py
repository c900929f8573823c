"""Record Cartesian demonstrations in the simulator and plot the tip paths (docs/teleop.md).

    scripts/plot_cartesian_path.py --episodes 4 --seed 5 --out docs/img/cartesian_path.png

Runs ``dp_ros sim record --device cartesian`` (a scripted 3D mouse through the recorder's
differential IK, lockstep time: the same seed gives the same figure), computes the tip of
every recorded joint position with the arm's URDF, and plots the paths from above and
from the side, with the targets. Prints, per episode, how far the tip strayed from the
straight line between the waypoints it was pushed toward (above the target, then onto it).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def straightness(tips: np.ndarray, hover_z: float = 0.08) -> tuple[float, float]:
    """Largest distance from the line start -> above-target, and above-target -> target."""
    above = int(np.argmin(np.abs(tips[:, 2] - hover_z) + np.linalg.norm(tips[:, :2] - tips[-1, :2], axis=1)))
    out = []
    for a, b in ((0, above), (above, len(tips) - 1)):
        d = tips[b] - tips[a]
        u = d / max(np.linalg.norm(d), 1e-9)
        seg = tips[a:b + 1] - tips[a]
        out.append(float(np.max(np.linalg.norm(seg - np.outer(seg @ u, u), axis=1))) if b > a else 0.0)
    return out[0], out[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--out", default="cartesian_path.png")
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dp_ros.cli import main as dp_ros
    from dp_ros.dataset.store import EpisodeStore
    from dp_ros.kinematics import ArmKinematics
    from dp_ros.sim.arm_description import TIP_FRAME, sim_arm_urdf
    from dp_ros.sim.scene import JOINTS

    kin = ArmKinematics.from_urdf(sim_arm_urdf(), JOINTS, TIP_FRAME)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "demos"
        if dp_ros(["sim", "record", "--dataset", str(data), "--episodes", str(args.episodes), "--seed",
                   str(args.seed), "--device", "cartesian", "--no-images"]) != 0:
            return 1
        with EpisodeStore.open(data) as store:
            episodes = [store.episode(e) for e in range(store.n_episodes)]
    fig, (top, side) = plt.subplots(1, 2, figsize=(10, 4.2))
    for e, ep in enumerate(episodes):
        tips = np.array([kin.pose(q)[0] for q in ep["joint_pos"]])
        targets = ep["targets"][0].reshape(2, 3)
        line = top.plot(tips[:, 0], tips[:, 1], ".-", ms=3, label=f"episode {e}")[0]
        top.scatter(targets[:, 0], targets[:, 1], s=120, facecolors="none", edgecolors=line.get_color())
        side.plot(np.hypot(tips[:, 0], tips[:, 1]), tips[:, 2], ".-", ms=3, color=line.get_color())
        first, second = straightness(tips)
        goal = targets[int(np.argmin(np.linalg.norm(targets[:, :2] - tips[-1, :2], axis=1)))]
        miss = np.linalg.norm(tips[-1, :2] - goal[:2])
        print(f"episode {e}: {len(tips)} frames, off the straight line {first * 1000:.1f} mm (to above the "
              f"target), {second * 1000:.1f} mm (down onto it); ends {miss * 1000:.1f} mm from the target's "
              f"centre, {tips[-1, 2] * 1000:.0f} mm above the table")
    top.set(xlabel="x (m)", ylabel="y (m)", title="tip paths from above (circles: the two targets)", aspect="equal")
    side.set(xlabel="distance from the base axis (m)", ylabel="z (m)", title="from the side")
    top.legend(fontsize=8)
    fig.suptitle(f"Cartesian teleop in the simulator: dp_ros sim record --device cartesian --seed {args.seed}")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
