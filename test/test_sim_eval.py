"""dp_ros sim eval's summary and image strip (no ROS); the closed loop itself runs in
test_sim_e2e.py."""
import cv2
import numpy as np

from dp_ros.sim.evaluate import _Frames, write_strip
from dp_ros.sim.results import EpisodeResult, format_summary, summarize


def test_summary_counts_goals_over_all_episodes():
    results = [EpisodeResult(0, True, 0, 2.0, 3), EpisodeResult(1, True, 1, 4.0, 5),
               EpisodeResult(2, False, -1, 12.0, 15), EpisodeResult(3, True, 1, 3.0, 4)]
    s = summarize(results)
    assert (s["episodes"], s["successes"], s["success_rate"]) == (4, 3, 0.75)
    assert s["goals"] == {"left": 1, "right": 2}
    assert s["goal_fraction"] == {"left": 0.25, "right": 0.5}
    assert s["seconds_to_success"] == {"mean": 3.0, "max": 4.0}
    text = format_summary(s, "m")
    assert "3/4 episodes succeeded (75%)" in text and "left 1 (25% of episodes)" in text
    assert summarize([])["success_rate"] == 0.0 and summarize([])["seconds_to_success"] is None


def test_strip_and_video(tmp_path):
    frames = _Frames(tmp_path / "v.mp4", 30.0)
    results = []
    for k in range(3):
        frames.active = True
        for v in (10, 200):
            frames.add(np.full((24, 32, 3), v + k, np.uint8), f"episode {k + 1}")
        frames.end_episode()
        results.append(EpisodeResult(k, k != 1, 0 if k != 1 else -1, 1.0, 1))
    frames.add(np.zeros((24, 32, 3), np.uint8), "between episodes: ignored")
    frames.close()
    assert len(frames.ends) == 3 and frames.ends[2][0, 0, 0] == 202  # the last frame of each episode
    assert (tmp_path / "v.mp4").stat().st_size > 0
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 6
    write_strip(frames.ends, results, tmp_path / "s.png", columns=2)
    sheet = cv2.cvtColor(cv2.imread(str(tmp_path / "s.png")), cv2.COLOR_BGR2RGB)
    assert sheet.shape == (2 * (24 + 6), 64, 3)
    assert tuple(sheet[25, 5]) == (40, 170, 40) and tuple(sheet[25, 40]) == (200, 40, 40)  # success, failure
