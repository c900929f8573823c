"""The whole loop in the simulator, every CI run: record demonstrations through the
recorder, train the low-dimensional diffusion policy, and evaluate it closed-loop
through the policy node.

Recording and evaluation run in lockstep simulated time with fixed seeds, and training
is seeded, so on one machine every run gives the same numbers: the thresholds below
are checked against a deterministic result, not a lucky one.

The diffusion policy must succeed in at least 90% of the episodes and choose each of
the two goals in some of them. The regression (MSE) baseline is not trained here: its
averaging of the two modes is tested in test_bimodal.py, its runner in test_backends.py,
and its figures in the simulator are docs/ablations.md's (about 20 s of the suite).
"""
import json
from pathlib import Path

import pytest
import yaml

from dp_ros.cli import main
from dp_ros.dataset.store import EpisodeStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

CONFIG = Path(__file__).resolve().parents[1] / "config" / "train_sim_lowdim.yaml"
DEMOS, EPISODES = 20, 20
# The documented config trains for 1500 steps (about 2.5 minutes on 2 cores). The loop is
# proven by fewer: with 600 steps the diffusion policy succeeds in 20 of these 20 episodes
# (left 2, right 18 with the default seam mode inpaint; naive seams: left 3, right 17;
# 1500 steps, naive: 19 of 20, left 3, right 16); 400 steps do not (13 of 20). Inpainting
# keeps an episode on the side its first chunk chose, so this small policy's bias to the
# right shows a little more; both sides must still be chosen (the bundled policy's balance
# is measured on 50 episodes per setting in docs/benchmarks.md).
DIFFUSION_STEPS = 600


def test_record_train_evaluate_lowdim(tmp_path):
    data = tmp_path / "demos"
    assert main(["sim", "record", "--dataset", str(data), "--episodes", str(DEMOS), "--seed", "11",
                 "--no-images", "--json", str(tmp_path / "record.json")]) == 0
    record = json.loads((tmp_path / "record.json").read_text())
    saved = [r for r in record if r["saved"]]
    assert len(saved) == DEMOS and {r["goal"] for r in saved} == {0, 1}
    with EpisodeStore.open(data) as store:
        assert store.camera_names == () and store.state_dims == {"targets": 6}

    raw = yaml.safe_load(CONFIG.read_text())
    raw["training"].update(steps=DIFFUSION_STEPS, warmup_steps=DIFFUSION_STEPS // 6, val_every=DIFFUSION_STEPS,
                           checkpoint_every=DIFFUSION_STEPS)
    config = tmp_path / "diffusion.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(data), "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    assert main(["sim", "eval", "--model", str(out / "model"), "--episodes", str(EPISODES), "--seed", "99",
                 "--json", str(tmp_path / "eval.json")]) == 0
    diffusion = json.loads((tmp_path / "eval.json").read_text())
    print(f"diffusion: success {diffusion['successes']}/{len(diffusion['episodes'])}, goals {diffusion['goals']}, "
          f"hold {diffusion['hold_fraction']:.3f}, seam jump median {diffusion['seam_jump_median']:.3f}")
    assert len(diffusion["episodes"]) == EPISODES
    assert diffusion["success_rate"] >= 0.9, diffusion
    assert min(diffusion["goals"].values()) >= 2, diffusion  # both modes, not one learned side
    # Continuous execution: no hold at seams, nothing the controller rejects, the speed limit held.
    assert diffusion["hold_fraction"] < 0.02 and diffusion["rejected_trajectories"] == 0, diffusion
    assert diffusion["speed_ratio_max"] <= 1 + 1e-6, diffusion
