"""dp_ros sim record: the scripted expert records demonstrations through the real recorder."""
import json

import numpy as np
import pytest

from dp_ros.cli import main
from dp_ros.dataset.store import EpisodeStore

pytestmark = pytest.mark.slow


def test_records_successful_demonstrations(tmp_path, capsys):
    data = tmp_path / "demos"
    assert main(["sim", "record", "--dataset", str(data), "--episodes", "2", "--seed", "3", "--json", "-"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])["sim_record"]
    assert sum(s["saved"] for s in summary) == 2
    store = EpisodeStore.open(data)
    assert store.n_episodes == 2 and store.camera_names == ("camera",)
    for e in range(2):
        ep = store.episode(e)
        assert len(ep["timestamp"]) >= 10 and ep["camera"].shape[1:] == (96, 96, 3)
        assert np.all(np.abs(np.diff(ep["action"], axis=0)) <= 1.0 * 0.1 + 1e-6)  # the recorder's speed limit
        assert np.abs(ep["joint_pos"][-1] - ep["joint_pos"][0]).max() > 0.3  # the arm moved to a target
