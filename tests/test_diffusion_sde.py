"""Score SDEs: forward marginals against simulation, exact transitions, the bridge to the DDPM chain, bad input."""
import math

import pytest
import torch

from tinyvdm.diffusion import (VESDE, VPSDE, GaussianDiffusion, SubVPSDE, alpha_bar, bits_per_dim, cosine_beta_schedule,
                               linear_beta_schedule)
from tinyvdm.diffusion.toy import ring_mixture

SDES = {"VP": VPSDE(), "sub-VP": SubVPSDE(), "VE": VESDE(sigma_min=0.01, sigma_max=10.0)}


@pytest.mark.parametrize("name", SDES)
def test_simulated_forward_sde_matches_marginal_prob(name):
    """Euler–Maruyama on dx = f dt + g dw from a point x_0 gives the mean and std that marginal_prob states."""
    sde, g = SDES[name], torch.Generator().manual_seed(0)
    m, steps = 10000, 500
    x0 = torch.tensor([1.5, -0.5]).expand(m, 2)
    x, dt = x0, 1.0 / steps
    for i in range(steps):
        t = torch.full((m,), i * dt)
        drift, diffusion = sde.sde(x, t)
        x = x + drift * dt + diffusion * dt ** 0.5 * torch.randn(m, 2, generator=g)
        if i + 1 in (50, 250, 500):
            mean, std = sde.marginal_prob(x0, torch.full((m,), (i + 1) * dt))
            sd = std[0].item()
            torch.testing.assert_close(x.mean(0), mean[0], atol=5 * sd / m ** 0.5 + 5e-3 * x0[0].abs().max(), rtol=0)
            torch.testing.assert_close(x.std(0), torch.full((2,), sd), rtol=0.035, atol=0)


@pytest.mark.parametrize("name", SDES)
def test_discretize_is_exact_for_any_step_size(name):
    """The Gaussian step x_t = x_{t−dt} + f + G z composes to p_t(x_t | x_0) however coarse the steps."""
    sde, g = SDES[name], torch.Generator().manual_seed(1)
    m = 40000
    x0 = torch.full((m, 1), 0.8)
    x = x0
    times = [0.0, 0.3, 0.35, 0.9, 1.0]  # uneven steps on purpose
    for before, after in zip(times, times[1:]):
        f, G = sde.discretize(x, torch.full((m,), after), after - before)
        x = x + f + G * torch.randn(m, 1, generator=g)
    mean, std = sde.marginal_prob(x0, torch.full((m,), 1.0))
    sd = std[0, 0].item()
    assert abs(x.mean() - mean[0, 0]) < 5 * sd / m ** 0.5
    assert abs(x.std() / sd - 1) < 5 * (0.5 / m) ** 0.5


def test_discrete_vpsde_passes_through_the_chain():
    """At t = (i + 1)/N the SDE's α_t² is ᾱ_i, and its exact step there is q(x_t | x_{t−1}) = N(√(1 − β_i) x, β_i)."""
    betas = cosine_beta_schedule(200)
    sde = GaussianDiffusion(betas).sde()
    steps = torch.tensor([0, 1, 57, 198, 199])
    t = (steps + 1).double() / 200
    alpha, sigma = sde.marginal_coeffs(t)
    torch.testing.assert_close(alpha ** 2, alpha_bar(betas)[steps])
    torch.testing.assert_close(sigma ** 2, 1 - alpha_bar(betas)[steps])
    x = torch.ones(5, 1, dtype=torch.float64)
    f, G = sde.discretize(x, t, 1 / 200)
    torch.testing.assert_close(f.flatten(), (1 - betas[steps]).sqrt() - 1)
    torch.testing.assert_close(G.flatten() ** 2, betas[steps])
    grid = sde.timesteps(10)
    assert grid[0] == 1 and grid[-1] == 0 and (grid[:-1] > grid[1:]).all()
    on_grid = grid[:-1] * 200
    torch.testing.assert_close(on_grid, on_grid.round(), msg="sampling times must be steps of the chain")


def test_vp_score_of_a_gaussian_turns_reverse_drift_into_the_ode():
    """For data N(0, I) under VP, p_t = N(0, I) for all t: the score is −x and the probability flow stands still."""
    sde = VPSDE()
    x, t = torch.randn(8, 3), torch.rand(8)
    drift, diffusion = sde.reverse(x, t, -x, probability_flow=True)
    torch.testing.assert_close(drift, torch.zeros_like(x), atol=1e-5, rtol=0)
    assert (diffusion == 0).all()


def test_ve_prior_log_density():
    sde = VESDE(sigma_max=7.0)
    z = torch.randn(4, 3, 2)
    expected = torch.distributions.Normal(0.0, 7.0).log_prob(z).flatten(1).sum(1)
    torch.testing.assert_close(sde.prior_logp(z), expected)


@pytest.mark.parametrize("name", ["VP", "VE"])
def test_probability_flow_likelihood_is_the_exact_density(name):
    """bits/dim from the ODE with the exact score equals −log₂ p_{t_0}(x) / D of the noised mixture; Hutchinson's
    trace estimate is unbiased (its mean over 256 points is within 4 standard errors)."""
    sde, mixture = SDES[name], ring_mixture()
    x = mixture.sample(256, torch.Generator().manual_seed(4))[0].double()
    t0 = sde.timesteps(100)[-2:-1]
    alpha, sigma = sde.marginal_coeffs(t0)
    exact = -mixture.log_prob(x, alpha.item(), sigma.item()) / (2 * math.log(2))
    ode = bits_per_dim(sde, mixture.score_fn(sde), x, 100, exact_trace=True)
    assert (ode - exact).abs().max() < 0.02, f"largest error {(ode - exact).abs().max():.4f} bits"
    estimate = bits_per_dim(sde, mixture.score_fn(sde), x, 100, generator=torch.Generator().manual_seed(5))
    diff = estimate - exact
    assert diff.mean().abs() < 4 * diff.std() / len(diff) ** 0.5


# --- bad input -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("t", [torch.tensor([1.5]), torch.tensor([-0.1]), torch.tensor([1]), torch.tensor(0.5)])
def test_times_out_of_range_or_of_the_wrong_kind_are_rejected(t):
    with pytest.raises(ValueError, match="expected"):
        VPSDE().marginal_prob(torch.zeros(1, 2), t)


def test_a_discrete_model_refuses_times_off_its_grid():
    d = GaussianDiffusion(linear_beta_schedule(100))
    score = d.score_fn(lambda x, t, cond=None: x)
    with pytest.raises(ValueError, match="grid"):
        score(torch.zeros(2, 2), torch.tensor([0.505, 0.505]))


@pytest.mark.parametrize("steps", [0, -2, 1.5])
def test_bad_step_counts_are_rejected(steps):
    for sde in (VPSDE(), VESDE(), GaussianDiffusion(linear_beta_schedule(100)).sde()):
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            sde.timesteps(steps)
    with pytest.raises(ValueError, match="at most 100"):
        GaussianDiffusion(linear_beta_schedule(100)).sde().timesteps(101)
