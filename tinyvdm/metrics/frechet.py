"""The Fréchet distance between two Gaussians fitted to feature sets (FID: Heusel et al., 2017).

Fit N(mu_a, S_a) and N(mu_b, S_b) to the features of two sample sets; their Fréchet
(2-Wasserstein) distance squared is

    d^2 = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2})     (Dowson & Landau, 1982)

S_a S_b is not symmetric, but it is similar to the symmetric PSD matrix
M = S_a^{1/2} S_b S_a^{1/2}, so tr((S_a S_b)^{1/2}) = sum_i sqrt(lambda_i(M)): two symmetric
eigendecompositions in float64, exact up to rounding (no iterative `sqrtm`, no complex parts).
FID applies this to image features, FVD (Unterthiner et al., 2018) to video features.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FrechetScore:
    """A Fréchet distance with the sample counts it was measured on (they set its bias: d^2 > 0 for equal laws)."""
    name: str  # "FID", "FVD", ...
    value: float
    n_a: int
    n_b: int
    dim: int
    unit: str = "samples"  # what was counted: "frames", "videos"

    def __float__(self) -> float:
        return self.value

    def __str__(self) -> str:
        return f"{self.name} = {self.value:.3f} (n = {self.n_a} vs {self.n_b} {self.unit}, {self.dim}-d features)"


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor, name: str = "FD",
                     unit: str = "samples") -> FrechetScore:
    """Fréchet distance d^2 between Gaussians fitted to features `(N_a, D)` and `(N_b, D)`."""
    mu_a, cov_a = gaussian_fit(features_a, "features_a")
    mu_b, cov_b = gaussian_fit(features_b, "features_b")
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"both feature sets need the same dimension, got {mu_a.shape[0]} and {mu_b.shape[0]}")
    value = frechet_distance_gaussians(mu_a, cov_a, mu_b, cov_b)
    return FrechetScore(name, value, len(features_a), len(features_b), mu_a.shape[0], unit)


def gaussian_fit(features: torch.Tensor, what: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D), in float64, of features `(N, D)` with N >= 2."""
    x = torch.as_tensor(features)
    if x.dim() != 2:
        raise ValueError(f"expected {what} as a matrix (N, D), got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {x.shape[0]} in {what}")
    x = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} hold NaN or infinite values")
    return x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])


def frechet_distance_gaussians(mu_a, cov_a, mu_b, cov_b) -> float:
    """d^2(N(mu_a, S_a), N(mu_b, S_b)) = |mu_a - mu_b|^2 + tr S_a + tr S_b - 2 tr((S_a S_b)^{1/2})."""
    mu_a, mu_b = (torch.as_tensor(m, dtype=torch.float64) for m in (mu_a, mu_b))
    cov_a, cov_b = (torch.as_tensor(c, dtype=torch.float64) for c in (cov_a, cov_b))
    D = mu_a.shape[-1]
    for name, m, c in (("a", mu_a, cov_a), ("b", mu_b, cov_b)):
        if m.shape != (D,) or c.shape != (D, D):
            raise ValueError(f"expected mu_{name} (D,) and cov_{name} (D, D) with D = {D}, "
                             f"got {tuple(m.shape)} and {tuple(c.shape)}")
    root_a = psd_sqrt(cov_a)
    m = root_a @ cov_b @ root_a
    trace_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    d2 = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return max(d2.item(), 0.0)  # rounding can leave -1e-12 for equal Gaussians


def psd_sqrt(cov: torch.Tensor) -> torch.Tensor:
    """S^{1/2} = U diag(sqrt(lambda)) U^T of a symmetric positive semi-definite S = U diag(lambda) U^T."""
    lam, U = torch.linalg.eigh((cov + cov.T) / 2)
    return (U * lam.clamp(min=0).sqrt()) @ U.T
