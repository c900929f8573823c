"""Shared by the dataset tests: a small store, deterministic frames, exact checks.

Run as a script it is the recorder that the crash tests kill:

    python dataset_helpers.py recording PATH     commits episodes 0 and 1, then records
                                                 episode 2 forever; prints READY after 20 frames
    python dataset_helpers.py commit-data PATH   ... dies (SIGKILL) in episode 2's commit after
                                                 the data arrays grew, before episode_ends did
    python dataset_helpers.py commit-torn PATH   ... the same, after episode_ends was resized
                                                 but before its new entry was written
"""
import os
import signal
import sys

import numpy as np

from dp_ros.dataset import EpisodeStore

JOINTS = ("j1", "j2", "j3")
CAMERAS = {"wrist": (12, 16), "front": (8, 10)}
DT = 0.1
TASK = {"name": "stack", "operator": "test", "objects": ["red", "blue"]}
LENGTHS = {0: 5, 1: 7, 2: 9}  # frames of each episode the crash recorder commits or tries to


def create(path, **kwargs) -> EpisodeStore:
    return EpisodeStore.create(path, JOINTS, CAMERAS, DT, task=TASK, **kwargs)


def frame(episode: int, k: int):
    """Frame k of episode ``episode``: (timestamp, joint_pos, action, images), always the same."""
    rng = np.random.default_rng(1000 * episode + k)
    t = 100.0 + 60.0 * episode + k * DT
    joint_pos = rng.normal(size=len(JOINTS)).astype(np.float32)
    action = (joint_pos + 0.01 * rng.normal(size=len(JOINTS))).astype(np.float32)
    images = {c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c, (h, w) in CAMERAS.items()}
    return t, joint_pos, action, images


def record(store: EpisodeStore, episode: int, n: int) -> int:
    writer = store.begin_episode()
    for k in range(n):
        writer.add(*frame(episode, k))
    return writer.commit()


def expected(episode: int, n: int) -> dict:
    frames = [frame(episode, k) for k in range(n)]
    out = {"timestamp": np.array([f[0] for f in frames]),
           "joint_pos": np.stack([f[1] for f in frames]),
           "action": np.stack([f[2] for f in frames])}
    out.update({c: np.stack([f[3][c] for f in frames]) for c in CAMERAS})
    return out


def assert_episode(store: EpisodeStore, index: int, episode: int, n: int) -> None:
    """Episode ``index`` of the store holds exactly frames 0..n-1 of ``episode``."""
    got, want = store.episode(index), expected(episode, n)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == want[key].dtype, key
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def _crash_recorder(mode: str, path: str) -> None:
    store = create(path)
    record(store, 0, LENGTHS[0])
    record(store, 1, LENGTHS[1])
    if mode == "recording":
        writer = store.begin_episode()
        k = 0
        while True:
            writer.add(*frame(2, k))
            k += 1
            if k == 20:
                print("READY", flush=True)

    def die(self, end):
        if mode == "commit-torn":
            self._ends_array.resize((len(self._ends) + 1,))
        os.kill(os.getpid(), signal.SIGKILL)

    EpisodeStore._append_episode_end = die
    record(store, 2, LENGTHS[2])


if __name__ == "__main__":
    _crash_recorder(sys.argv[1], sys.argv[2])
