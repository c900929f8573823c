"""Lockstep simulated time: dp_ros sim eval and sim record give the same results on
every run, a simulated inference delay changes the motion, and bad settings are
refused before anything runs."""
import json

import pytest

from dp_ros.cli import main

pytestmark = pytest.mark.slow


def _eval(tmp_path, name, *extra):
    out = tmp_path / f"{name}.json"
    assert main(["sim", "eval", "--episodes", "2", "--seed", "3", "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_eval_is_reproducible_and_latency_changes_the_motion(tmp_path, capsys):
    a, b = _eval(tmp_path, "a"), _eval(tmp_path, "b")
    assert a.pop("inference_ms_p50") > 0 and b.pop("inference_ms_p50") > 0
    assert a == b  # every key but the measured inference time
    for key in ("success_rate", "goal_counts", "episodes", "hold_fraction", "seam_jump_median", "seam_jump_max",
                "speed_limited_fraction", "chunks", "latency_s"):
        assert key in a
    assert len(a["episodes"]) == 2 and set(a["episodes"][0]) == {"success", "goal", "duration_s"}
    assert a["success_rate"] == 1.0 and a["latency_s"] == 0.0

    slow = _eval(tmp_path, "slow", "--latency", "0.3")
    assert slow["latency_s"] == 0.3
    # Each chunk arrives 0.3 s after its observations: the controller runs out of
    # points for longer (3 of every 8 periods instead of ~1) and more first segments are clamped.
    assert slow["hold_fraction"] > a["hold_fraction"] + 0.2
    assert slow["speed_limited_fraction"] > a["speed_limited_fraction"]
    again = _eval(tmp_path, "slow2", "--latency", "0.3")
    slow.pop("inference_ms_p50"), again.pop("inference_ms_p50")
    assert slow == again

    out = capsys.readouterr().out
    assert out.count("\n") < 60 and "[INFO]" not in out  # quiet: episode lines and a summary


@pytest.mark.parametrize("args, message", [
    (["--latency", "-0.1"], "--latency must be >= 0"),
    (["--set", "no_such_parameter=1"], "no parameter 'no_such_parameter'"),
    (["--set", "action_horizon=99"], "action_horizon"),
    (["--set", "num_inference_steps=abc"], "num_inference_steps"),
    (["--set", "action_horizon"], "expected NAME=VALUE"),
])
def test_bad_settings_are_refused_before_any_episode(args, message, capsys):
    try:
        code = main(["sim", "eval", "--episodes", "1", *args])
    except SystemExit as exc:
        code, text = 2, str(exc)
    else:
        text = capsys.readouterr().out
    assert code == 2 and message in text, text
    assert "episode 1/1" not in text


def test_record_is_reproducible(tmp_path):
    runs = []
    for name in ("a", "b"):
        summary = tmp_path / f"{name}.json"
        assert main(["sim", "record", "--dataset", str(tmp_path / name), "--episodes", "2", "--seed", "4",
                     "--no-images", "--json", str(summary)]) == 0
        runs.append(json.loads(summary.read_text()))
    assert runs[0] == runs[1] and sum(r["saved"] for r in runs[0]) == 2
    import numpy as np

    from dp_ros.dataset.store import EpisodeStore

    data = []
    for name in ("a", "b"):
        with EpisodeStore.open(tmp_path / name) as store:
            data.append([store.episode(i) for i in range(store.n_episodes)])
    for ep_a, ep_b in zip(*data):
        assert ep_a.keys() == ep_b.keys()
        for key in ep_a:  # the same frames, the same stamps, the same actions
            np.testing.assert_array_equal(ep_a[key], ep_b[key], err_msg=key)
