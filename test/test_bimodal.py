"""The paper's central claim on a toy task: diffusion keeps both modes, MSE averages them.

Demonstrations: from the same (uninformative) state, half of the action sequences ramp
to +1 and half to -1 in the first joint. A diffusion policy's samples should land near
one of the two endings, with both represented; a plain MSE regression head trained on
the same data predicts their mean, between the two.
"""
import numpy as np
import pytest
import torch

from dp_ros.core.normalizer import Normalizer
from dp_ros.model import LowdimConfig, NoiseConfig, ObsConfig, PolicyConfig, UNetConfig, build_policy

T_O, T_P, J = 2, 8, 2


def make_demos(n: int, rng: np.random.Generator):
    state = rng.uniform(-0.05, 0.05, size=(n, T_O, J))  # carries no information about the mode
    mode = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    ramp = np.linspace(0.25, 1.0, T_P)
    action = np.zeros((n, T_P, J))
    action[:, :, 0] = mode[:, None] * ramp[None, :]
    action[:, :, 1] = 0.5 * ramp[None, :]
    action += rng.normal(0, 0.02, size=action.shape)
    return state, action, mode


def train(head: str, steps: int, seed: int = 0):
    """Fresh demonstrations every batch, so the state cannot be memorized into a mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    state, action, _ = make_demos(4096, rng)
    cfg = PolicyConfig(
        joint_names=("a", "b"),
        dt=0.1,
        obs=ObsConfig(lowdim=(LowdimConfig("joint_pos", J),)),
        n_obs_steps=T_O,
        horizon=T_P,
        n_action_steps=4,
        head=head,
        unet=UNetConfig(down_dims=(32, 64), step_embed_dim=32),
        noise=NoiseConfig(num_train_steps=100, num_inference_steps=10),
    )
    norm = Normalizer.fit({"action": action, "joint_pos": state})
    policy = build_policy(cfg, norm)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    policy.train()
    for _ in range(steps):
        s, a, _ = make_demos(128, rng)
        batch = {"obs": {"joint_pos": torch.as_tensor(s, dtype=torch.float32)},
                 "action": torch.as_tensor(a, dtype=torch.float32)}
        loss = policy.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return policy.eval()


@pytest.mark.slow
def test_diffusion_keeps_both_modes_while_regression_averages():
    diffusion = train("diffusion", steps=450)
    regression = train("regression", steps=150)

    test_state, _, _ = make_demos(200, np.random.default_rng(1))
    obs = {"joint_pos": torch.as_tensor(test_state, dtype=torch.float32)}
    diffusion.reset(seed=123)
    final_d = diffusion.sample(obs)[:, -1, 0].numpy()  # first joint at the end of the chunk
    final_r = regression.sample(obs)[:, -1, 0].numpy()

    near_mode = np.abs(np.abs(final_d) - 1.0) < 0.25
    frac_pos = float(np.mean(final_d > 0))
    print(f"diffusion: {near_mode.mean():.2f} near a mode, {frac_pos:.2f} positive; "
          f"regression mean |end| {np.abs(final_r).mean():.3f}")
    assert near_mode.mean() >= 0.9, f"only {near_mode.mean():.2f} of diffusion samples are near a mode"
    assert 0.2 <= frac_pos <= 0.8, f"diffusion collapsed onto one mode ({frac_pos:.2f} positive)"
    # Regression lands between the modes, far from both.
    assert np.all(np.abs(final_r) < 0.3), f"regression ends {final_r.min():.2f}..{final_r.max():.2f}"
