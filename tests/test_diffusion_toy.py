"""The analytic test beds: their exact scores are gradients of their noised log densities; the toy MLP learns."""
import math

import pytest
import torch

from tinyvdm.diffusion import GaussianDiffusion, linear_beta_schedule
from tinyvdm.diffusion.toy import Empirical, ToyMLP, ring_mixture, train_toy

NOISE_LEVELS = [(1.0, 0.05), (0.8, 0.6), (0.05, 1.0)]  # (α, σ): almost clean, half way, almost pure noise


def autograd_score(log_density, x):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(log_density(x).sum(), x)[0]


@pytest.mark.parametrize("alpha, sigma", NOISE_LEVELS)
@pytest.mark.parametrize("cond", [None, 1, "mixed"])
def test_mixture_score_is_the_gradient_of_its_noised_log_density(alpha, sigma, cond):
    mixture = ring_mixture()
    x = 1.5 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    if cond == "mixed":
        cond = torch.arange(64) % (mixture.num_classes + 1)  # every class, and the null class (= all of them)
    a, s = torch.full((64,), alpha, dtype=torch.float64), torch.full((64,), sigma, dtype=torch.float64)
    expected = autograd_score(lambda y: mixture.log_prob(y, alpha, sigma, cond=cond), x)
    torch.testing.assert_close(mixture.score(x, a, s, cond), expected)


def test_mixture_density_integrates_to_one():
    mixture = ring_mixture()
    grid = torch.linspace(-2.5, 2.5, 401, dtype=torch.float64)
    points = torch.cartesian_prod(grid, grid)
    cell = (grid[1] - grid[0]) ** 2
    for cond in (None, 0, 2):
        total = (mixture.log_prob(points, cond=cond).exp().sum() * cell).item()
        assert total == pytest.approx(1.0, abs=2e-3), (cond, total)


def test_class_conditional_draws_come_from_that_class():
    mixture = ring_mixture()
    x, component = mixture.sample(2000, torch.Generator().manual_seed(1), cond=2)
    assert (mixture.labels[component] == 2).all()
    posterior = mixture.class_posterior(x)
    torch.testing.assert_close(posterior.sum(1), torch.ones(2000))
    assert posterior[:, 2].mean() > 0.95


@pytest.mark.parametrize("alpha, sigma", NOISE_LEVELS)
def test_empirical_score_is_the_gradient_of_its_noised_log_density(alpha, sigma):
    """Data = 5 points of shape (1, 2, 2); p_t is the average of N(α x_i, σ² I)."""
    g = torch.Generator().manual_seed(2)
    points = torch.randn(5, 1, 2, 2, generator=g)
    data = Empirical(points)
    x = torch.randn(7, 1, 2, 2, generator=g)

    def log_density(y):
        sq = ((y[:, None] - alpha * points[None]) ** 2).flatten(2).sum(-1)  # (7, 5)
        return torch.logsumexp(-sq / (2 * sigma ** 2), 1) - math.log(5)

    score = data.score(x, torch.full((7,), alpha), torch.full((7,), sigma))
    torch.testing.assert_close(score, autograd_score(log_density, x), atol=1e-3, rtol=1e-4)


def test_empirical_denoiser_returns_a_training_point_at_low_noise():
    points = torch.randn(8, 4, generator=torch.Generator().manual_seed(3))
    x0 = Empirical(points).posterior_mean(points[[5]] + 0.01, torch.ones(1), torch.full((1,), 0.05))
    torch.testing.assert_close(x0, points[[5]])


def test_toy_mlp_shapes_and_null_class():
    model = ToyMLP(num_classes=3)
    x, t = torch.randn(4, 2), torch.tensor([0, 10, 500, 999])
    assert model(x, t).shape == (4, 2)
    torch.testing.assert_close(model(x, t), model(x, t, torch.full((4,), 3)), msg="no condition means the null class")
    with pytest.raises(ValueError, match=r"expected points of shape \(B, 2\)"):
        model(torch.randn(4, 3), t)


def test_toy_mlp_training_lowers_the_loss():
    torch.manual_seed(0)
    model = ToyMLP(hidden=64)
    diffusion = GaussianDiffusion(linear_beta_schedule(1000))
    losses = train_toy(model, diffusion, ring_mixture(), steps=300, batch_size=256,
                       generator=torch.Generator().manual_seed(4))
    first, last = sum(losses[:30]) / 30, sum(losses[-30:]) / 30
    assert last < 0.75 * first, f"loss went from {first:.3f} to {last:.3f}"
