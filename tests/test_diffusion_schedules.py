"""Noise schedules: closed forms, the continuous-time limit, and the step <-> time map."""
import math

import pytest
import torch

from tinyvdm.diffusion import (VPSDE, alpha_bar, cosine_beta_schedule, linear_beta_schedule, sigmoid_beta_schedule, snr,
                               step_to_time, time_to_step)

SCHEDULES = [linear_beta_schedule, cosine_beta_schedule, sigmoid_beta_schedule]


def test_cosine_alpha_bar_is_the_squared_cosine():
    n, s = 1000, 0.008
    a = alpha_bar(cosine_beta_schedule(n, s=s))
    tau = torch.arange(1, n + 1, dtype=torch.float64) / n
    expected = torch.cos((tau + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    unclipped = slice(0, 990)  # the last steps clip β at 0.999
    torch.testing.assert_close(a[unclipped], expected[unclipped], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedules_go_from_data_to_pure_noise(schedule):
    betas = schedule(1000)
    a = alpha_bar(betas)
    assert ((betas > 0) & (betas < 1)).all()
    assert (a[1:] < a[:-1]).all(), "ᾱ_t must fall at every step"
    assert a[0] > 0.99, f"the first step should barely noise the data, ᾱ_0 = {a[0]:.4f}"
    assert a[-1] < 1e-3, f"the last step should leave (almost) no signal so x_T ~ N(0, I), ᾱ_T = {a[-1]:.2e}"
    ratio = snr(a)
    assert (ratio[1:] < ratio[:-1]).all()


def test_ddpm_chain_converges_to_the_vp_sde():
    """ᾱ of the linear N-step chain at step i approaches α(t)² of VPSDE() at t = (i + 1)/N, with error O(1/N)."""
    sde = VPSDE()
    errors = []
    for n in (10, 100, 1000, 10000):
        chain = alpha_bar(linear_beta_schedule(n))
        t = step_to_time(torch.arange(n, dtype=torch.float64), n)
        continuous = sde.marginal_coeffs(t)[0] ** 2
        errors.append((chain - continuous).abs().max().item())
    assert errors[-1] < 1e-4, errors
    for coarse, fine in zip(errors, errors[1:]):
        assert fine < coarse / 5, f"error should shrink ~10x per 10x steps: {errors}"


def test_step_time_round_trip():
    n = 1000
    steps = torch.arange(n)
    t = step_to_time(steps, n).float()
    assert t.max() == 1 and t.min() > 0
    assert torch.equal(time_to_step(t, n), steps)


@pytest.mark.parametrize("t", [torch.tensor([0.5004]), torch.tensor([0.0]), torch.tensor([1.2])])
def test_time_to_step_rejects_off_grid_or_out_of_range_times(t):
    with pytest.raises(ValueError, match="grid"):
        time_to_step(t, 1000)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("num_steps", [0, -3, 2.5])
def test_schedules_reject_bad_step_counts(schedule, num_steps):
    with pytest.raises(ValueError, match="positive integer"):
        schedule(num_steps)
