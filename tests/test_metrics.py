"""Fréchet distance: closed forms for Gaussians (commuting and not), invariants, estimates from samples, errors."""
import math
import re

import pytest
import torch

from tinyvdm.metrics import FrechetScore, frechet_distance, frechet_distance_gaussians


def random_spd(dim: int, generator: torch.Generator) -> torch.Tensor:
    a = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(dim, dtype=torch.float64)


def test_one_dimensional_gaussians():
    """d^2(N(m1, s1^2), N(m2, s2^2)) = (m1 - m2)^2 + (s1 - s2)^2."""
    d2 = frechet_distance_gaussians(torch.tensor([1.0]), torch.tensor([[4.0]]),
                                    torch.tensor([-2.0]), torch.tensor([[0.25]]))
    assert d2 == pytest.approx(3.0 ** 2 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_commuting_covariances_give_the_sum_of_squared_root_differences():
    """Diagonal S_a, S_b: d^2 = |mu_a - mu_b|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    a, b = torch.tensor([1.0, 4.0, 9.0, 0.0]), torch.tensor([4.0, 1.0, 9.0, 2.0])
    mu_a, mu_b = torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([1.0, 1.0, 0.0, 3.0])
    expected = (mu_a - mu_b).square().sum() + (a.sqrt() - b.sqrt()).square().sum()
    d2 = frechet_distance_gaussians(mu_a, torch.diag(a), mu_b, torch.diag(b))
    assert d2 == pytest.approx(expected.item(), rel=1e-12)


def test_non_commuting_2x2_covariances():
    """For 2 x 2 PSD S_a, S_b: tr((S_a S_b)^{1/2}) = sqrt(tr(S_a S_b) + 2 sqrt(det S_a det S_b))."""
    cov_a = torch.tensor([[2.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    cov_b = torch.tensor([[1.0, -0.5], [-0.5, 3.0]], dtype=torch.float64)
    assert not torch.allclose(cov_a @ cov_b, cov_b @ cov_a)
    trace_sqrt = math.sqrt((cov_a @ cov_b).trace() + 2 * math.sqrt(cov_a.det() * cov_b.det()))
    mu = torch.zeros(2)
    expected = cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    assert frechet_distance_gaussians(mu, cov_a, mu, cov_b) == pytest.approx(expected.item(), rel=1e-10)


def test_linear_transport_map_in_many_dimensions():
    """x ~ N(0, S), y = A x with A symmetric positive definite: x -> A x is the optimal transport map
    (the gradient of a convex function), so d^2 = E|x - A x|^2 = tr((I - A) S (I - A)), S and A not commuting."""
    g = torch.Generator().manual_seed(0)
    cov, transport = random_spd(6, g), random_spd(6, g)
    assert not torch.allclose(cov @ transport, transport @ cov)
    residual = torch.eye(6, dtype=torch.float64) - transport
    expected = (residual @ cov @ residual).trace().item()
    mu = torch.randn(6, dtype=torch.float64, generator=g)
    d2 = frechet_distance_gaussians(mu, cov, transport @ mu, transport @ cov @ transport)
    assert d2 == pytest.approx(expected + (residual @ mu).square().sum().item(), rel=1e-9)


def test_identical_sets_give_zero_and_the_distance_is_symmetric():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(500, 8, generator=g)
    b = torch.randn(400, 8, generator=g) @ torch.randn(8, 8, generator=g) + 1.0
    assert frechet_distance(a, a).value == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b).value == pytest.approx(frechet_distance(b, a).value, rel=1e-9)


def test_shift_and_rotation_invariance():
    """Translating one set by v adds |v|^2; rotating both sets by the same orthogonal Q changes nothing."""
    g = torch.Generator().manual_seed(2)
    scales = torch.tensor([3.0, 1.0, 0.5, 2.0, 1.0], dtype=torch.float64)
    a = torch.randn(300, 5, generator=g, dtype=torch.float64) * scales
    v = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    assert frechet_distance(a, a + v).value == pytest.approx(v.square().sum().item(), rel=1e-9)
    b = torch.randn(300, 5, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    assert frechet_distance(a @ q, b @ q).value == pytest.approx(frechet_distance(a, b).value, rel=1e-9)


def test_samples_of_known_gaussians_estimate_the_closed_form():
    """Features drawn from N(mu_a, S_a) and N(mu_b, S_b): the estimate approaches d^2 of the laws."""
    g = torch.Generator().manual_seed(3)
    cov_a, cov_b = random_spd(4, g), random_spd(4, g)
    mu_a, mu_b = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    n = 200_000
    a = mu_a + torch.randn(n, 4, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov_a).T
    b = mu_b + torch.randn(n, 4, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov_b).T
    expected = frechet_distance_gaussians(mu_a, cov_a, mu_b, cov_b)
    assert frechet_distance(a, b).value == pytest.approx(expected, rel=0.02)


def test_score_reports_its_sample_counts():
    g = torch.Generator().manual_seed(4)
    score = frechet_distance(torch.randn(30, 3, generator=g), torch.randn(20, 3, generator=g), "FVD", "videos")
    assert isinstance(score, FrechetScore) and (score.n_a, score.n_b, score.dim) == (30, 20, 3)
    assert "n = 30 vs 20 videos" in str(score) and float(score) == score.value


@pytest.mark.parametrize("a, b, message", [
    (torch.zeros(10), torch.zeros(10, 2), "matrix (N, D)"),
    (torch.zeros(1, 3), torch.zeros(5, 3), "at least 2 samples"),
    (torch.zeros(4, 3), torch.zeros(5, 2), "same dimension"),
    (torch.full((4, 3), float("nan")), torch.zeros(5, 3), "NaN"),
])
def test_bad_features_give_clear_errors(a, b, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        frechet_distance(a, b)
