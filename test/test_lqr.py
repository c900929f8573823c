"""The paper's linear sanity check (Chi et al. 2023, section IV-C): for a linear system
with LQR demonstrations, the optimal denoiser recovers the controller.

Dynamics s' = A s + B a + w, w ~ N(0, SIGMA_W^2 I) (process noise), demonstrations from
the discrete LQR gain K: a = -K s. Given the state s_t:

- the first action is deterministic: a_t = -K s_t, so a diffusion policy with T_p = 1
  must sample it (up to what it failed to learn);
- the later actions depend on the noise still to come. Their mean is the closed-loop
  unroll -K (A - B K)^t' s_t, and their spread is known: the state error after t' steps
  has covariance S_t' = sum_j (A-BK)^j W (A-BK)^j', so a_t+t' has covariance K S_t' K'.
  A policy with T_p > 1 must sample sequences with that mean and about that spread.

The tolerances are relative to the size of the actions over the held-out states (RMS of
K s). The mean of M samples is allowed 0.1 of it plus the error its own spread gives it
(3 standard errors of the analytic spread); each sampled first action 0.3 (mean error
and sampler spread together). These are loose bounds for about ten seconds of training
per policy on a 2-core CPU: the trained models land at 0.03-0.06 (means) and 0.13-0.20
(first action), see the printout. The untrained networks fail the same checks by a wide
margin, which is asserted too, so the bounds are not vacuous. The samples' spread is
printed beside what the process noise implies but not asserted: after this little
training it is about the same at every t', the first action included.
"""
import numpy as np
import pytest
import scipy.linalg
import torch

from dp_ros.core.normalizer import Normalizer
from dp_ros.model import LowdimConfig, NoiseConfig, ObsConfig, PolicyConfig, UNetConfig, build_policy

N_S, N_A = 3, 2  # state and action dimensions
SIGMA_W = 0.05  # process noise, per step and state dimension
STEPS, BATCH = 600, 128
M = 16  # samples per held-out state
REL_TOL = 0.1  # of the action RMS: see the module docstring
FIRST_TOL = 0.3  # per-sample error of the first action, of the action RMS (trained: 0.13-0.20)


def lti_system(seed: int = 3):
    """A random controllable system, open-loop unstable, and its discrete LQR gain."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(N_S, N_S))
    a *= 1.1 / max(abs(np.linalg.eigvals(a)))  # spectral radius 1.1: the demonstrator has work to do
    b = rng.normal(size=(N_S, N_A))
    ctrb = np.hstack([np.linalg.matrix_power(a, k) @ b for k in range(N_S)])
    assert np.linalg.matrix_rank(ctrb) == N_S
    q, r = np.eye(N_S), 0.5 * np.eye(N_A)
    p = scipy.linalg.solve_discrete_are(a, b, q, r)
    k = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
    assert max(abs(np.linalg.eigvals(a - b @ k))) < 1.0  # the closed loop is stable
    return a, b, k


def demonstrations(a, b, k, n: int, horizon: int, rng: np.random.Generator):
    """n windows: a start state and the LQR actions of the next ``horizon`` steps under process noise."""
    s = rng.uniform(-1, 1, size=(n, N_S))
    states, actions = s.copy(), []
    for _ in range(horizon):
        u = -s @ k.T
        actions.append(u)
        s = s @ a.T + u @ b.T + rng.normal(0, SIGMA_W, size=s.shape)
    return states, np.stack(actions, axis=1)  # (n, N_S), (n, horizon, N_A)


def make_policy(a, b, k, horizon: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    states, actions = demonstrations(a, b, k, 4096, horizon, rng)
    cfg = PolicyConfig(
        joint_names=tuple(f"u{i}" for i in range(N_A)), dt=0.1, obs=ObsConfig(lowdim=(LowdimConfig("state", N_S),)),
        n_obs_steps=1, horizon=horizon, n_action_steps=1,
        unet=UNetConfig(down_dims=(32,), step_embed_dim=16),
        noise=NoiseConfig(num_train_steps=100, num_inference_steps=10),
    )
    torch.manual_seed(seed)
    return build_policy(cfg, Normalizer.fit({"action": actions.reshape(-1, N_A), "state": states})), rng


def train(policy, a, b, k, rng):
    """Fresh demonstrations every batch (the system is known: no data set to overfit)."""
    opt = torch.optim.AdamW(policy.parameters(), lr=4e-3, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=STEPS, pct_start=0.1)
    policy.train()
    for _ in range(STEPS):
        s, u = demonstrations(a, b, k, BATCH, policy.config.horizon, rng)
        loss = policy.compute_loss({"obs": {"state": torch.as_tensor(s[:, None], dtype=torch.float32)},
                                    "action": torch.as_tensor(u, dtype=torch.float32)})
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return policy.eval()


def errors(policy, a, b, k):
    """Per t': the RMS error of the sample mean against -K (A-BK)^t' s, the sample
    spread, and the analytic spread, each divided by the actions' RMS; held-out states."""
    horizon = policy.config.horizon
    s = np.random.default_rng(99).uniform(-0.9, 0.9, size=(64, N_S))
    obs = {"state": torch.as_tensor(np.repeat(s, M, axis=0)[:, None], dtype=torch.float32)}
    policy.reset(seed=5)
    with torch.no_grad():
        got = policy.sample(obs).double().numpy().reshape(len(s), M, horizon, N_A)
    closed = a - b @ k
    scale = np.sqrt(np.mean((s @ k.T) ** 2))
    mean_err, spread, expected = [], [], []
    cov = np.zeros((N_S, N_S))
    for t in range(horizon):
        want = -s @ (k @ np.linalg.matrix_power(closed, t)).T  # (states, N_A)
        mean_err.append(np.sqrt(np.mean((got[:, :, t].mean(axis=1) - want) ** 2)) / scale)
        spread.append(np.sqrt(np.mean(got[:, :, t].var(axis=1, ddof=1))) / scale)
        expected.append(np.sqrt(np.trace(k @ cov @ k.T) / N_A) / scale)
        cov = closed @ cov @ closed.T + SIGMA_W ** 2 * np.eye(N_S)
    return np.array(mean_err), np.array(spread), np.array(expected)


def check(mean_err, spread, expected) -> list[str]:
    """What fails, as sentences (empty: the policy is the LQR controller)."""
    problems = []
    allowed = REL_TOL + 3 * expected / np.sqrt(M)  # a model error, and the sample mean's own noise
    for t in np.flatnonzero(mean_err > allowed):
        problems.append(f"t'={t}: mean error {mean_err[t]:.3f} > {allowed[t]:.3f}")
    # Each sampled first action, not only their mean, is -K s: its error has no noise to
    # excuse it, only the sampler's residual spread (a few DDIM steps of a small network).
    first = float(np.hypot(mean_err[0], spread[0]))
    if first > FIRST_TOL:
        problems.append(f"first action: RMS error per sample {first:.3f} > {FIRST_TOL}")
    return problems


@pytest.mark.parametrize("horizon", [1, 4])
def test_diffusion_policy_recovers_the_lqr_controller_and_its_closed_loop_unroll(horizon):
    a, b, k = lti_system()
    policy, rng = make_policy(a, b, k, horizon)
    untrained = check(*errors(policy, a, b, k))
    trained = train(policy, a, b, k, rng)
    mean_err, spread, expected = errors(trained, a, b, k)
    print(f"T_p={horizon}: mean error {np.round(mean_err, 3)}, spread {np.round(spread, 3)} "
          f"(process noise: {np.round(expected, 3)}), of the action RMS")
    assert check(mean_err, spread, expected) == []
    # An untrained network fails the same checks: every step's mean, and the first action.
    assert len(untrained) == horizon + 1 and all("mean error" in p for p in untrained[:horizon]), untrained
