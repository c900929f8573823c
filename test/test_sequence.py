"""Training windows: the reference's padding, exact contents against a brute-force
enumeration, DataLoader workers, the episode split, normalizer statistics and the
dataset checks."""
import pickle
import re

import numpy as np
import pytest
import torch

from dp_ros.dataset import DatasetError, EpisodeStore
from dp_ros.model.config import CameraConfig, LowdimConfig, ObsConfig, PolicyConfig
from dp_ros.training.sequence import SequenceDataset, check_dataset, fit_normalizer, split_episodes

JOINTS = ("j1", "j2")
CAM = "cam"
H, W = 8, 10  # below the model's 32-px minimum: configs here are never validate()d
DT = 0.1
LENGTHS = (6, 9, 4, 7)


def joint_value(episode, step):
    return 100.0 * episode + step


def action_value(episode, step):
    return 10000.0 + 100.0 * episode + step


def image(episode, step):
    """Channel 0 is the episode, 1 the step, 2 the pixel's row and column (layout check)."""
    img = np.empty((H, W, 3), np.uint8)
    img[..., 0] = episode
    img[..., 1] = step
    img[..., 2] = np.arange(H)[:, None] * W + np.arange(W)[None, :]
    return img


def make_store(path, lengths=LENGTHS, cameras={CAM: (H, W)}, dt=DT, joints=JOINTS, dropped=()):
    """Episodes of the given lengths; ``dropped``: (episode, step) ticks the recorder dropped
    (a gap in the stamps after the previous frame)."""
    with EpisodeStore.create(path, joints, cameras, dt) as store:
        for e, n in enumerate(lengths):
            writer = store.begin_episode()
            for k in range(n):
                q = np.array([joint_value(e, k), -joint_value(e, k)], np.float32)
                a = np.array([action_value(e, k), -action_value(e, k)], np.float32)
                t = 50.0 * e + (k + sum(1 for d in dropped if d[0] == e and d[1] <= k)) * dt
                writer.add(t, q, a, {c: image(e, k)[:h, :w] for c, (h, w) in cameras.items()})
            writer.commit()
    return path


def config(t_o=2, t_p=4, t_a=2, cameras=((CAM, H, W),), lowdim=(("joint_pos", 2),), joints=JOINTS, dt=DT):
    return PolicyConfig(
        joint_names=joints, dt=dt,
        obs=ObsConfig(cameras=tuple(CameraConfig(n, h, w, h, w) for n, h, w in cameras),
                      lowdim=tuple(LowdimConfig(n, d) for n, d in lowdim)),
        n_obs_steps=t_o, horizon=t_p, n_action_steps=t_a)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("seq") / "demo.zarr")


def brute_force_windows(episodes, lengths, t_o, t_p, t_a):
    """Every (episode, steps) window in the reference's order: each start s whose window
    pads at most T_o-1 steps before the episode and at most T_a-1 after it."""
    out = []
    for e in episodes:
        n = lengths[e]
        for s in range(-3 * t_p - n, 3 * t_p + n):
            steps = list(range(s, s + t_p))
            before = sum(k < 0 for k in steps)
            after = sum(k > n - 1 for k in steps)
            if before <= t_o - 1 and after <= t_a - 1:
                out.append((e, [min(max(k, 0), n - 1) for k in steps]))
    return out


def assert_sample(sample, episode, steps, t_o):
    obs_steps = steps[:t_o]
    want_q = np.array([[joint_value(episode, k), -joint_value(episode, k)] for k in obs_steps], np.float32)
    want_a = np.array([[action_value(episode, k), -action_value(episode, k)] for k in steps], np.float32)
    np.testing.assert_array_equal(sample["obs"]["joint_pos"].numpy(), want_q)
    np.testing.assert_array_equal(sample["action"].numpy(), want_a)
    np.testing.assert_array_equal(sample["obs"][CAM].numpy(), np.stack([image(episode, k) for k in obs_steps]))


@pytest.mark.parametrize("t_o,t_p,t_a", [(2, 4, 2), (1, 4, 4), (3, 4, 1), (2, 6, 5), (1, 1, 1), (4, 4, 1)])
def test_windows_match_brute_force(store_path, t_o, t_p, t_a):
    episodes = [3, 0, 1]  # any order; episode 2 (4 frames) would be shorter than T_p = 6
    if t_p <= 4:
        episodes.append(2)
    cfg = config(t_o, t_p, t_a)
    ds = SequenceDataset(store_path, episodes, cfg)
    want = brute_force_windows(episodes, LENGTHS, t_o, t_p, t_a)
    assert len(ds) == len(want) == sum(LENGTHS[e] - t_p + t_a + t_o - 1 for e in episodes)
    for i, (episode, steps) in enumerate(want):
        assert_sample(ds[i], episode, steps, t_o)
    assert_sample(ds[-1], *want[-1], t_o)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_padding_at_both_ends_and_windows_never_mix_episodes(store_path):
    t_o, t_p, t_a = 3, 4, 2
    ds = SequenceDataset(store_path, [0, 1], config(t_o, t_p, t_a))
    first = ds[0]  # s = -2: the first frame three times, then step 1
    np.testing.assert_array_equal(first["obs"]["joint_pos"][:, 0].numpy(), [0, 0, 0])
    np.testing.assert_array_equal(first["action"][:, 0].numpy() - 10000, [0, 0, 0, 1])
    last0 = ds[LENGTHS[0] - t_p + t_a + t_o - 2]  # episode 0's last window: s = L - T_p + T_a - 1 = 3
    np.testing.assert_array_equal(last0["obs"]["joint_pos"][:, 0].numpy(), [3, 4, 5])
    np.testing.assert_array_equal(last0["action"][:, 0].numpy() - 10000, [3, 4, 5, 5])
    for i in range(len(ds)):
        sample = ds[i]
        episodes = {*(sample["obs"]["joint_pos"][:, 0].numpy() // 100),
                    *((sample["action"][:, 0].numpy() - 10000) // 100),
                    *sample["obs"][CAM][:, 0, 0, 0].numpy()}
        assert len(episodes) == 1, (i, episodes)


def test_shapes_and_dtypes(store_path):
    ds = SequenceDataset(store_path, [1], config(2, 4, 2))
    sample = ds[3]
    assert set(sample) == {"obs", "action"} and set(sample["obs"]) == {CAM, "joint_pos"}
    assert sample["obs"][CAM].shape == (2, H, W, 3) and sample["obs"][CAM].dtype == torch.uint8
    assert sample["obs"]["joint_pos"].shape == (2, 2) and sample["obs"]["joint_pos"].dtype == torch.float32
    assert sample["action"].shape == (4, 2) and sample["action"].dtype == torch.float32
    # lowdim only, no cameras
    sample = SequenceDataset(store_path, [1], config(cameras=()))[0]
    assert set(sample["obs"]) == {"joint_pos"}


def test_pickled_dataset_reopens_the_store(store_path):
    ds = SequenceDataset(store_path, [0, 1], config())
    ds[0]  # opens the store in this process
    state = ds.__getstate__()
    assert not any(isinstance(v, torch.Tensor) or type(v).__module__.startswith("zarr") for v in state.values())
    assert "_images" not in state and "_lowdim" not in state
    copy = pickle.loads(pickle.dumps(ds))
    for i in (0, 5, len(ds) - 1):
        torch.testing.assert_close(copy[i]["action"], ds[i]["action"], rtol=0, atol=0)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers(store_path, context):
    cfg = config(2, 4, 2)
    ds = SequenceDataset(store_path, [0, 1, 2, 3], cfg)
    ds[0]  # the parent has read zarr (and started zarr's I/O thread) before the workers start
    want = brute_force_windows([0, 1, 2, 3], LENGTHS, 2, 4, 2)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False, num_workers=2,
                                         multiprocessing_context=context, timeout=120)
    batches = list(loader)
    assert sum(len(b["action"]) for b in batches) == len(ds) == len(want)
    assert batches[0]["obs"][CAM].shape == (4, 2, H, W, 3) and batches[0]["obs"][CAM].dtype == torch.uint8
    actions = torch.cat([b["action"] for b in batches])
    images = torch.cat([b["obs"][CAM] for b in batches])
    for i, (episode, steps) in enumerate(want):
        np.testing.assert_array_equal(actions[i, :, 0].numpy(), [action_value(episode, k) for k in steps])
        np.testing.assert_array_equal(images[i, :, 0, 0, :2].numpy(), [[episode, k] for k in steps[:2]])


def test_split_episodes():
    for n in (1, 2, 3, 10, 37):
        for ratio in (0.0, 0.05, 0.1, 0.5, 0.9):
            train, val = split_episodes(n, ratio, seed=7)
            assert sorted(train + val) == list(range(n)), (n, ratio)
            assert train == sorted(train) and val == sorted(val)
            assert len(train) >= 1
            if ratio == 0 or n == 1:
                assert val == []
            else:
                assert len(val) == min(max(1, round(n * ratio)), n - 1)
            assert split_episodes(n, ratio, seed=7) == (train, val)  # seeded
    vals = {tuple(split_episodes(20, 0.2, seed)[1]) for seed in range(10)}
    assert len(vals) > 5  # shuffled, not a fixed tail
    with pytest.raises(ValueError, match="val_ratio"):
        split_episodes(5, 1.0, 0)
    with pytest.raises(DatasetError, match="no episodes"):
        split_episodes(0, 0.1, 0)


def test_fit_normalizer_uses_only_the_given_episodes(store_path):
    with EpisodeStore.open(store_path) as store:
        norm = fit_normalizer(store, [1, 3])
    assert set(norm.stats) == {"action", "joint_pos"}
    q = norm.stats["joint_pos"]
    np.testing.assert_array_equal(q.min, [100, -(300 + LENGTHS[3] - 1)])
    np.testing.assert_array_equal(q.max, [300 + LENGTHS[3] - 1, -100])
    a = norm.stats["action"]
    np.testing.assert_array_equal(a.min, [10100, -(10300 + LENGTHS[3] - 1)])
    np.testing.assert_array_equal(a.max, [10300 + LENGTHS[3] - 1, -10100])
    with EpisodeStore.open(store_path) as store, pytest.raises(DatasetError, match="no episodes"):
        fit_normalizer(store, [])


def test_check_dataset_accepts_a_matching_dataset(store_path):
    with EpisodeStore.open(store_path) as store:
        check_dataset(store, config(2, 4, 2))


@pytest.mark.parametrize("case,cfg,patterns", [
    ("joints", config(joints=("j1", "j9")), [r"\['j1', 'j9'\]", r"\['j1', 'j2'\]"]),
    ("camera", config(cameras=((CAM, H, W), ("wrist", H, W))), ["'wrist' is not in the dataset", r"\['cam'\]"]),
    ("size", config(cameras=((CAM, 16, 20),)), ["8x10", "16x20"]),
    ("lowdim", config(lowdim=(("joint_pos", 2), ("gripper", 1))), ["'gripper' is not in the dataset"]),
    ("lowdim dim", config(lowdim=(("joint_pos", 3),)), ["'joint_pos' has 2 dimensions in the dataset, 3"]),
    ("dt", config(dt=0.05), ["dt 0.05 s", "0.1 s"]),
    ("horizon", config(t_o=2, t_p=8, t_a=2), ["episode 2 \\(4 frames\\)", "= 6 frames"]),
])
def test_check_dataset_names_the_problem(store_path, case, cfg, patterns):
    with EpisodeStore.open(store_path) as store, pytest.raises(DatasetError) as info:
        check_dataset(store, cfg)
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), (case, str(info.value))
    if case == "horizon":  # 6 frames give one window, padded with the last action
        assert not re.search("episode [013]", str(info.value)), str(info.value)


def test_check_dataset_dt_tolerance(store_path):
    with EpisodeStore.open(store_path) as store:
        check_dataset(store, config(dt=DT + 5e-7))


def test_check_dataset_empty_store(tmp_path):
    path = make_store(tmp_path / "empty.zarr", lengths=())
    with EpisodeStore.open(path) as store, pytest.raises(DatasetError, match="no episodes"):
        check_dataset(store, config())


def test_windows_never_cross_a_gap_of_dropped_ticks(tmp_path):
    """Issue 14.8: a dropped tick left frames 0.2 s apart that training took for 0.1 s."""
    # Episode 1 (9 frames): the tick before step 4 was dropped, so frames 3 and 4 are 0.2 s apart.
    path = make_store(tmp_path / "gap.zarr", dropped=[(1, 4)])
    t_o, t_p, t_a = 2, 4, 2
    ds = SequenceDataset(path, [1], config(t_o, t_p, t_a))
    got = [(ds[i]["action"][:, 0].numpy() - 10100).astype(int).tolist() for i in range(len(ds))]
    want = [steps for _, steps in brute_force_windows([1], LENGTHS, t_o, t_p, t_a)
            if not (min(steps) <= 3 and max(steps) >= 4)]  # no window reads both 3 and 4
    assert got == want and len(want) < LENGTHS[1] - t_p + t_a + t_o - 1
    with EpisodeStore.open(path) as store:
        check_dataset(store, config(t_o, t_p, t_a))  # the other windows still train
        gaps = store.stats()["episodes"][1]["gaps"]
    assert gaps == [{"after_frame": 3, "seconds": pytest.approx(0.2)}]


def test_an_episode_whose_every_window_crosses_a_gap_is_named(tmp_path):
    path = make_store(tmp_path / "gaps.zarr", lengths=(6, 6), dropped=[(1, 2), (1, 4)])
    with EpisodeStore.open(path) as store, pytest.raises(DatasetError, match=r"episodes \[1\] give no training window"):
        check_dataset(store, config(2, 6, 1))
