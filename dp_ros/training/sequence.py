"""Training samples: fixed-length windows cut from the recorded episodes (torch, no ROS).

Windows follow the reference implementation (diffusion_policy's ``SequenceSampler``
with pad_before = T_o - 1 and pad_after = T_a - 1). In an episode of L frames a
window starts at s = -(T_o-1) ... L - T_p + T_a - 1 and covers steps s ... s+T_p-1;
a step outside 0..L-1 is clamped into the episode (the first frame repeated before
it, the last frame after it). The observation is the window's first T_o steps, the
action all T_p of them. For L = 6, T_o = 2, T_p = 4, T_a = 2::

    episode step            -1   0   1   2   3   4   5   6
    first window (s = -1)   [0   0]  1   2                    reads rows 0 0 1 2
    last window  (s = 3)                    [3   4]  5   5    reads rows 3 4 5 5
    [...]: the T_o observation steps; the action is all T_p steps

At most T_o-1 steps are padded before the episode and T_a-1 after it; the newest
observation (step s+T_o-1) is always recorded, since T_a <= T_p - T_o + 1. An
episode gives L - T_p + T_a + T_o - 1 windows, and windows never cross episodes.

Windows never cross a gap either: where the recorder dropped ticks, two consecutive
frames lie more than 1.5 dt apart (``store.find_gaps``), and a window spanning them
would teach the policy a motion at the wrong speed; such windows are left out.

DataLoader workers (fork or spawn): a pickled dataset carries no zarr handle, and a
forked worker does not use its parent's. Each process opens the store on its first
``__getitem__`` and then keeps the low-dim arrays in memory (they are small); images are read per sample, the T_o
frames of a camera in one contiguous slice. No augmentation here: the model crops.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import zarr

from dp_ros.core.normalizer import Normalizer
from dp_ros.dataset.store import DatasetError, EpisodeStore, find_gaps
from dp_ros.model.config import PolicyConfig

DT_TOLERANCE = 1e-6  # s
_MAX_LISTED = 10  # short episodes named in one error message


def _data_group(path) -> zarr.Group:
    """The store's ``data/`` group, read-only (a read-only open takes no lock)."""
    return zarr.open_group(str(path), mode="r", zarr_format=2)["data"]


def _episode_lengths(store: EpisodeStore) -> np.ndarray:
    return np.diff(store.episode_ends, prepend=0)


def check_dataset(store: EpisodeStore, cfg: PolicyConfig, exclude: Sequence[int] = ()) -> None:
    """Raise DatasetError naming every reason the dataset cannot train this policy
    (episodes in ``exclude`` are not used, so they are not checked)."""
    problems = []
    exclude = set(exclude)
    bad = sorted(e for e in exclude if not 0 <= e < store.n_episodes)
    if bad:
        problems.append(f"exclude_episodes names {bad}, which the dataset (episodes 0..{store.n_episodes - 1}) "
                        "does not have")
    if store.n_episodes - len(exclude) <= 0:
        problems.append("it has no episodes (after exclude_episodes): record demonstrations into it first")
    if tuple(cfg.joint_names) != store.joint_names:
        problems.append(f"the policy's joints {list(cfg.joint_names)} differ from the dataset's "
                        f"{list(store.joint_names)} (names and order must match)")
    for cam in cfg.obs.cameras:
        if cam.name not in store.image_shapes:
            problems.append(f"camera '{cam.name}' is not in the dataset, which has cameras {list(store.camera_names)}")
        elif store.image_shapes[cam.name] != (cam.height, cam.width):
            h, w = store.image_shapes[cam.name]
            problems.append(f"camera '{cam.name}' is stored at {h}x{w} (height x width) but the policy expects "
                            f"{cam.height}x{cam.width}: set the policy's image size to the dataset's")
    data = _data_group(store.path)
    lowdim = {k: math.prod(data[k].shape[1:]) for k in data.array_keys()
              if k not in store.image_shapes and k != "action"}
    for key in cfg.obs.lowdim:
        if key.name not in lowdim:
            problems.append(f"low-dim key '{key.name}' is not in the dataset, which has {sorted(lowdim)}")
        elif lowdim[key.name] != key.dim:
            problems.append(f"low-dim key '{key.name}' has {lowdim[key.name]} dimensions in the dataset, "
                            f"{key.dim} in the policy")
    if abs(cfg.dt - store.dt) > DT_TOLERANCE:
        problems.append(f"the policy's dt {cfg.dt} s differs from the dataset's record period {store.dt} s: "
                        "train with the dataset's dt")
    lengths = _episode_lengths(store)
    # An episode shorter than T_p still gives windows (padded with its last action, as in
    # the reference); one shorter than this gives none.
    need = cfg.horizon - cfg.n_action_steps - cfg.n_obs_steps + 2
    short = np.array([i for i in np.flatnonzero(lengths < need) if i not in exclude], dtype=int)
    if short.size:
        listed = ", ".join(f"episode {i} ({lengths[i]} frames)" for i in short[:_MAX_LISTED])
        more = f" and {short.size - _MAX_LISTED} more" if short.size > _MAX_LISTED else ""
        problems.append(f"{listed}{more} {'is' if short.size == 1 else 'are'} too short for one training window "
                        f"(T_p - T_a - T_o + 2 = {need} frames): exclude {'it' if short.size == 1 else 'them'} "
                        "(training.exclude_episodes) or lower the horizon")
    stamps = _data_group(store.path)["timestamp"]
    gappy = []
    for i in range(store.n_episodes):
        if i in exclude or lengths[i] < need:
            continue
        sl = store.episode_slice(i)
        gaps = find_gaps(stamps[sl], store.dt)
        if len(gaps) and not len(window_starts(int(lengths[i]), cfg.n_obs_steps, cfg.horizon, cfg.n_action_steps,
                                               gaps)):
            gappy.append(i)
    if gappy:
        problems.append(f"episodes {gappy[:_MAX_LISTED]}{' ...' if len(gappy) > _MAX_LISTED else ''} give no "
                        "training window: every window crosses a gap of dropped record ticks (dp_ros dataset info "
                        "lists them); exclude them (training.exclude_episodes)")
    if problems:
        raise DatasetError(f"{store.path} cannot train this policy: " + "; ".join(problems))


def split_episodes(n_episodes: int, val_ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) episode indices, each sorted: a seeded shuffle split by episode, never
    by window. Val gets round(n * val_ratio) episodes, at least 1 when val_ratio > 0 and
    n >= 2, and training keeps at least one."""
    if n_episodes < 1:
        raise DatasetError("there are no episodes to split into training and validation")
    if not 0.0 <= val_ratio < 1.0:
        raise ValueError(f"val_ratio {val_ratio} must be in [0, 1)")
    n_val = round(n_episodes * val_ratio)
    if val_ratio > 0 and n_episodes >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, n_episodes - 1)
    order = np.random.default_rng(seed).permutation(n_episodes)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def fit_normalizer(store: EpisodeStore, episodes: Sequence[int], lowdim_keys=("joint_pos",)) -> Normalizer:
    """Min-max statistics of 'action' and each low-dim key over the given (training) episodes only."""
    if len(episodes) == 0:
        raise DatasetError("no episodes to compute normalizer statistics from")
    slices = [store.episode_slice(e) for e in episodes]
    end = max(s.stop for s in slices)
    data = _data_group(store.path)
    stats = {}
    for key in ("action", *lowdim_keys):
        x = np.asarray(data[key][:end])
        x = x.reshape(end, -1)  # (N, ...) -> (N, D)
        stats[key] = np.concatenate([x[s] for s in slices])
    return Normalizer.fit(stats)


def window_starts(length: int, t_o: int, t_p: int, t_a: int, gaps: np.ndarray = np.zeros(0, np.int64)) -> np.ndarray:
    """The first step s of every window of an episode of ``length`` frames that crosses none
    of ``gaps`` (g: frames g and g+1 are not one dt apart)."""
    starts = np.arange(-(t_o - 1), length - t_p + t_a, dtype=np.int64)  # last: L - T_p + T_a - 1
    if len(gaps) == 0:
        return starts
    before = np.zeros(length, np.int64)  # before[r]: gaps between frames 0..r
    before[np.asarray(gaps) + 1] = 1
    before = np.cumsum(before)
    first = np.clip(starts, 0, length - 1)  # the rows a window reads, clamped into the episode
    last = np.clip(starts + t_p - 1, 0, length - 1)
    return starts[before[last] == before[first]]


class SequenceDataset(torch.utils.data.Dataset):
    """Windows of the given episodes: {"obs": {camera: uint8 (T_o, H, W, 3), lowdim key:
    float32 (T_o, D)}, "action": float32 (T_p, J)}. Call check_dataset() first."""

    def __init__(self, store_path, episodes: Sequence[int], cfg: PolicyConfig):
        self.path = Path(store_path)
        self.cfg = cfg
        t_o, t_p, t_a = cfg.n_obs_steps, cfg.horizon, cfg.n_action_steps
        rows = []
        with EpisodeStore.open(self.path) as store:  # read-only: no lock; not kept (see _open)
            stamps = _data_group(self.path)["timestamp"]
            for e in episodes:
                sl = store.episode_slice(e)
                length = sl.stop - sl.start
                starts = window_starts(length, t_o, t_p, t_a, find_gaps(stamps[sl], store.dt))
                rows.append(np.stack([np.full_like(starts, sl.start), np.full_like(starts, length), starts], axis=1))
        # (N, 3): the episode's first row in the store, its length, the window start s
        self._windows = np.concatenate(rows) if rows else np.zeros((0, 3), np.int64)
        self._end = int((self._windows[:, 0] + self._windows[:, 1]).max()) if len(self._windows) else 0
        self._reset()

    def _reset(self) -> None:
        self._pid: int | None = None
        self._images: dict[str, zarr.Array] = {}
        self._lowdim: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in ("_pid", "_images", "_lowdim"):
            del state[name]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def _open(self) -> None:
        """Open the store in this process (again after a fork: the parent's handles stay there)."""
        data = _data_group(self.path)
        self._images = {c.name: data[c.name] for c in self.cfg.obs.cameras}
        keys = ("action", *(k.name for k in self.cfg.obs.lowdim))
        self._lowdim = {k: np.asarray(data[k][:self._end], dtype=np.float32).reshape(self._end, -1) for k in keys}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._windows)

    def __getitem__(self, i) -> dict:
        start, length, s = self._windows[range(len(self))[int(i)]]  # IndexError when out of range
        if self._pid != os.getpid():
            self._open()
        t_o, t_p = self.cfg.n_obs_steps, self.cfg.horizon
        rows = start + np.clip(np.arange(s, s + t_p), 0, length - 1)  # (T_p,) store rows, clamped
        obs_rows = rows[:t_o]
        lo, hi = int(obs_rows[0]), int(obs_rows[-1])  # clamped rows never decrease: one slice
        obs = {cam: torch.from_numpy(arr[lo:hi + 1][obs_rows - lo]) for cam, arr in self._images.items()}
        for key in self.cfg.obs.lowdim:
            obs[key.name] = torch.from_numpy(self._lowdim[key.name][obs_rows])
        return {"obs": obs, "action": torch.from_numpy(self._lowdim["action"][rows])}
