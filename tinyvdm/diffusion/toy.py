"""Toy worlds where the right answer is known: test beds for every sampler, and a small denoiser for 2-D points.

For data x_0 ~ p noised as x_t = α x_0 + σ z, the best possible denoiser is the posterior mean
x̂_0 = E[x_0 | x_t], and Tweedie's formula turns it into the exact score of the noised data:

    ∇ log p_t(x_t) = (α x̂_0 − x_t) / σ²,        ε̂ = (x_t − α x̂_0) / σ.

A Gaussian mixture has x̂_0 in closed form at every noise level (and per class), and so does a finite set
of points. `score_fn(sde)` and `denoiser(diffusion)` plug these exact answers into any sampler, so the only
error left is the sampler's own.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from einops import einsum, rearrange
from torch import nn
from tqdm.auto import tqdm

from ._batch import per_sample
from .guidance import drop_condition


class AnalyticData(ABC):
    """Data whose posterior mean E[x_0 | α x_0 + σ z = x] is known; subclasses give `posterior_mean`."""

    @abstractmethod
    def posterior_mean(self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, cond=None) -> torch.Tensor:
        """E[x_0 | x_t = x] for x_t = α x_0 + σ z, with α, σ of shape (B,)."""

    def score(self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, cond=None) -> torch.Tensor:
        """∇ log p_t(x) = (α x̂_0 − x) / σ²   (Tweedie)."""
        x0 = self.posterior_mean(x, alpha, sigma, cond)
        return (per_sample(alpha, x) * x0 - x) / per_sample(sigma, x) ** 2

    def score_fn(self, sde, cond=None):
        """The exact score_fn(x, t) of the data noised by `sde`, for the samplers in `samplers.py`."""
        def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.score(x, *sde.marginal_coeffs(t), cond)
        return score

    def denoiser(self, diffusion):
        """The exact model(x_t, t, cond=None) for a `GaussianDiffusion`, predicting ε, x_0 or v as it expects."""
        def model(x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
            alpha = diffusion.sqrt_alpha_bar.to(t.device)[t]
            sigma = diffusion.sqrt_one_minus_alpha_bar.to(t.device)[t]
            x0 = self.posterior_mean(x_t, alpha, sigma, cond)
            eps = (x_t - per_sample(alpha, x_t) * x0) / per_sample(sigma, x_t)
            return diffusion.target(x0, eps, t)
        return model


class GaussianMixture(AnalyticData):
    """p(x) = Σ_k π_k N(x; μ_k, Σ_k), each component labelled with a class; class ∅ = `null_cond` means all of them.

    Noised by x_t = α x_0 + σ z, component k becomes N(α μ_k, α² Σ_k + σ² I), and
    E[x_0 | x_t, k] = μ_k + α Σ_k (α² Σ_k + σ² I)⁻¹ (x_t − α μ_k). With Σ_k = U_k diag(λ_k) U_kᵀ these are
    per-axis divisions, so every noise level costs the same. The class-conditional p(x | c) keeps the
    components labelled c, their weights renormalised.
    """

    def __init__(self, weights, means, covs, labels=None):
        self.weights, self.means, self.covs = (_float64(v) for v in (weights, means, covs))
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d) or (self.weights <= 0).any():
            raise ValueError(f"expected positive weights ({k},), means ({k}, d) and covs ({k}, d, d), got "
                             f"{tuple(self.weights.shape)}, {tuple(self.means.shape)}, {tuple(self.covs.shape)}")
        self.weights = self.weights / self.weights.sum()
        self.labels = torch.zeros(k, dtype=torch.long) if labels is None else torch.as_tensor(labels, dtype=torch.long)
        self.num_classes = int(self.labels.max()) + 1
        self.null_cond = self.num_classes
        self.eigenvalues, self.eigenvectors = torch.linalg.eigh(self.covs)  # (K, d), (K, d, d)
        if (self.eigenvalues <= 0).any():
            raise ValueError("every covariance must be positive definite")
        self.dim = d

    def __repr__(self) -> str:
        return f"GaussianMixture(components={len(self.weights)}, dim={self.dim}, classes={self.num_classes})"

    def sample(self, n: int, generator: torch.Generator | None = None, cond=None):
        """(x (n, d) float32, component (n,)) drawn from p, or from p(x | c) for a class id / (n,) tensor `cond`."""
        probs = rearrange(self._log_weights(self._cond(cond, n)).softmax(0), "k b -> b k").expand(n, -1)
        component = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        scale = self.eigenvectors[component] * self.eigenvalues[component].sqrt()[:, None, :]  # U diag(√λ)
        x = self.means[component] + einsum(scale, z, "n i j, n j -> n i")
        return x.float(), component

    def log_prob(self, x: torch.Tensor, alpha=None, sigma=None, cond=None) -> torch.Tensor:
        """log p_t(x) of the data noised to α, σ (default α = 1, σ = 0: the data itself), shape (B,)."""
        alpha, sigma = self._noise_level(x, alpha, sigma)
        log_joint, _, _ = self._components(x, alpha, sigma, cond)
        return torch.logsumexp(log_joint, 0)

    def responsibilities(self, x: torch.Tensor, alpha=None, sigma=None, cond=None) -> torch.Tensor:
        """p(k | x_t) for each component, shape (B, K)."""
        alpha, sigma = self._noise_level(x, alpha, sigma)
        log_joint, _, _ = self._components(x, alpha, sigma, cond)
        return rearrange(log_joint.softmax(0), "k b -> b k")

    def class_posterior(self, x: torch.Tensor) -> torch.Tensor:
        """p(c | x) for each class, shape (B, num_classes)."""
        r = self.responsibilities(x)
        return torch.zeros(len(x), self.num_classes, dtype=r.dtype).index_add_(1, self.labels, r)

    def posterior_mean(self, x, alpha, sigma, cond=None):
        log_joint, y, shrink = self._components(x, alpha, sigma, cond)
        # Σ_k p(k | x_t) E[x_0 | x_t, k],  E[x_0 | x_t, k] = μ_k + U_k diag(α λ / (α² λ + σ²)) U_kᵀ (x_t − α μ_k)
        r = log_joint.softmax(0)  # (K, B)
        x0 = (einsum(self.means.to(x.dtype), r, "k i, k b -> i b")
              + (self.eigenvectors.to(x.dtype) @ (y * shrink * r[:, None])).sum(0))
        return rearrange(x0, "i b -> b i")

    def moments(self, x: torch.Tensor, cond: int | None = None):
        """(weights (K,), means (K, d), covs (K, d, d)) of samples x, each sample split over components by p(k | x).

        For x drawn from the mixture (or from class `cond`) these estimate its π_k, μ_k, Σ_k without bias,
        however much the components overlap.
        """
        x = x.double()
        r = self.responsibilities(x, cond=cond)  # (B, K)
        mass = r.sum(0)
        means = einsum(r, x, "b k, b i -> k i") / mass.clamp(min=1e-12)[:, None]
        centred = rearrange(x, "b i -> b 1 i") - means  # (B, K, d)
        covs = einsum(r, centred, centred, "b k, b k i, b k j -> k i j") / mass.clamp(min=1e-12)[:, None, None]
        return mass / len(x), means, covs

    def moment_errors(self, x: torch.Tensor, cond=None) -> dict:
        """Largest errors over components of the sample's moments, each scale-free:

        weights |π̂_k − π_k|, means ‖Σ_k^{−½} (μ̂_k − μ_k)‖ (in units of the component's own spread), and
        covariances ‖Σ_k^{−½} Σ̂_k Σ_k^{−½} − I‖_F (relative error; 0.1 is a 10% wrong spread² along some axis).
        """
        weights, means, covs = self.moments(x, cond)
        true_weights = self._true_weights(cond)
        keep = true_weights > 0
        whiten = self.eigenvectors @ torch.diag_embed(self.eigenvalues ** -0.5) @ self.eigenvectors.transpose(1, 2)
        mean_error = einsum(whiten, means - self.means, "k i j, k j -> k i").norm(dim=-1)
        cov_error = (whiten @ covs @ whiten - torch.eye(self.dim, dtype=torch.float64)).flatten(1).norm(dim=-1)
        return {"weights": (weights - true_weights).abs().max().item(),
                "means": mean_error[keep].max().item(),
                "covs": cov_error[keep].max().item()}

    def moment_kl(self, x: torch.Tensor, cond=None) -> float:
        """KL(π̂ ‖ π) + Σ_k π_k KL(N(μ̂_k, Σ̂_k) ‖ N(μ_k, Σ_k)): one scale-free error of the sample's moments."""
        weights, means, covs = self.moments(x, cond)
        true_weights = self._true_weights(cond)
        keep = true_weights > 0
        w, w_hat = true_weights[keep], weights[keep]
        precision = torch.linalg.inv(self.covs[keep])
        diff = (means - self.means)[keep]
        gauss_kl = 0.5 * (einsum(precision, covs[keep], "k i j, k j i -> k")
                          + einsum(diff, precision, diff, "k i, k i j, k j -> k")
                          - self.dim + torch.logdet(self.covs[keep]) - torch.logdet(covs[keep]))
        return ((w_hat * (w_hat.clamp(min=1e-12) / w).log()).sum() + (w * gauss_kl).sum()).item()

    def _components(self, x, alpha, sigma, cond):
        """log π_k N(x; α μ_k, α² Σ_k + σ² I) (K, B), the rotated offsets y = U_kᵀ (x − α μ_k) (K, d, B),
        and α λ / (α² λ + σ²) (K, d, B).

        The batch is the last axis so every sum runs over the short axes; computed in x's dtype.
        """
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected points of shape (B, {self.dim}), got {tuple(x.shape)}")
        means, eigenvalues, eigenvectors = (v.to(x.dtype) for v in (self.means, self.eigenvalues, self.eigenvectors))
        alpha, sigma = alpha.to(x.dtype), sigma.to(x.dtype)
        offset = rearrange(x, "b i -> 1 i b") - alpha * rearrange(means, "k i -> k i 1")
        y = eigenvectors.transpose(1, 2) @ offset  # (K, d, B)
        inv_var = 1 / (alpha ** 2 * rearrange(eigenvalues, "k i -> k i 1") + sigma ** 2)
        log_normal = -0.5 * ((y ** 2 * inv_var).sum(1) - inv_var.log().sum(1) + self.dim * math.log(2 * math.pi))
        log_joint = self._log_weights(self._cond(cond, len(x))).to(x.dtype) + log_normal
        return log_joint, y, alpha * rearrange(eigenvalues, "k i -> k i 1") * inv_var

    def _log_weights(self, cond: torch.Tensor | None) -> torch.Tensor:
        """log π_k for the whole mixture (K, 1), or renormalised within each sample's class (K, B)."""
        log_w = rearrange(self.weights.log(), "k -> k 1")
        if cond is None:
            return log_w
        allowed = (rearrange(self.labels, "k -> k 1") == cond) | (cond == self.null_cond)
        log_w = log_w.masked_fill(~allowed, -math.inf)
        return log_w - torch.logsumexp(log_w, 0, keepdim=True)

    def _true_weights(self, cond: int | None) -> torch.Tensor:
        """π_k of the mixture, or of class `cond` (zero outside it), shape (K,)."""
        return self.weights if cond is None else self._log_weights(self._cond(cond, 1))[:, 0].exp()

    def _cond(self, cond, n: int) -> torch.Tensor | None:
        """None, or one class id per sample (n,) from an int or an (n,) tensor."""
        if cond is None:
            return None
        cond = torch.as_tensor(cond).long().cpu()
        cond = cond.expand(n) if cond.ndim == 0 else cond
        if cond.shape != (n,) or cond.min() < 0 or cond.max() > self.null_cond:
            raise ValueError(f"expected class ids in [0, {self.num_classes}] (with {self.null_cond} = none) "
                             f"of shape ({n},), got {tuple(cond.shape)}")
        return cond

    def _noise_level(self, x, alpha, sigma):
        alpha = (torch.ones(len(x), dtype=torch.float64) if alpha is None
                 else torch.as_tensor(alpha, dtype=torch.float64).expand(len(x)))
        sigma = (torch.zeros(len(x), dtype=torch.float64) if sigma is None
                 else torch.as_tensor(sigma, dtype=torch.float64).expand(len(x)))
        return alpha, sigma


def _float64(values) -> torch.Tensor:
    """A float64 tensor from a tensor, nested lists of numbers, or a list of tensors."""
    if isinstance(values, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in values):
        return torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in values])
    return torch.as_tensor(values, dtype=torch.float64)


def ring_mixture() -> GaussianMixture:
    """Six anisotropic Gaussians on a circle of radius 1.2 with unequal weights, two per class (three classes)."""
    angles = torch.arange(6, dtype=torch.float64) * math.pi / 3
    radial = torch.tensor([0.08, 0.12, 0.06, 0.10, 0.07, 0.11], dtype=torch.float64)
    tangential = torch.tensor([0.25, 0.18, 0.30, 0.20, 0.22, 0.15], dtype=torch.float64)
    rotation = torch.stack([torch.stack([angles.cos(), -angles.sin()], -1),
                            torch.stack([angles.sin(), angles.cos()], -1)], -2)
    covs = rotation @ torch.diag_embed(torch.stack([radial, tangential], -1) ** 2) @ rotation.transpose(-1, -2)
    means = 1.2 * torch.stack([angles.cos(), angles.sin()], -1)
    return GaussianMixture([0.25, 0.10, 0.20, 0.15, 0.20, 0.10], means, covs, labels=[0, 0, 1, 1, 2, 2])


class Empirical(AnalyticData):
    """The uniform distribution over a finite set of points (N, …): its exact denoiser can only return them.

    x̂_0 = Σ_i softmax_i(−‖x_t − α x_i‖² / 2σ²) x_i, the ideal denoiser a network would learn if it memorised.
    """

    def __init__(self, points: torch.Tensor):
        self.points = points.float()
        self.flat = rearrange(self.points, "n ... -> n (...)")
        self.sq_norms = (self.flat ** 2).sum(-1)

    def posterior_mean(self, x, alpha, sigma, cond=None):
        if cond is not None or x.shape[1:] != self.points.shape[1:]:
            raise ValueError(f"expected unconditional x of shape (B, {', '.join(map(str, self.points.shape[1:]))}), "
                             f"got {tuple(x.shape)} with cond={'set' if cond is not None else None}")
        flat = rearrange(x.float(), "b ... -> b (...)")
        alpha, sigma = alpha.float()[:, None], sigma.float()[:, None]
        # −‖x − α x_i‖² / 2σ², dropping ‖x‖² which every i shares
        logits = (2 * alpha * flat @ self.flat.T - alpha ** 2 * self.sq_norms) / (2 * sigma ** 2)
        return (logits.softmax(-1) @ self.flat).reshape(x.shape).to(x.dtype)


class ToyMLP(nn.Module):
    """A small denoiser for points (B, dim): MLP with residual blocks, a sinusoidal embedding of the integer step t,
    and, if `num_classes` is set, a class embedding with one extra id (= `null_cond`) for "no class".
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, num_classes: int | None = None):
        super().__init__()
        self.dim, self.hidden, self.num_classes = dim, hidden, num_classes
        self.null_cond = num_classes
        self.inp = nn.Linear(dim, hidden)
        self.time = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.label = nn.Embedding(num_classes + 1, hidden) if num_classes is not None else None
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected points of shape (B, {self.dim}), got {tuple(x.shape)}")
        h = self.inp(x) + self.time(timestep_embedding(t, self.hidden))
        if self.label is not None:
            cond = torch.full_like(t, self.null_cond) if cond is None else cond
            h = h + self.label(cond.long())
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos(t ω_j), sin(t ω_j)] with ω_j = max_period^(−j / (dim/2)), shape (B, dim)   (Vaswani et al. 2017)."""
    half = dim // 2
    omega = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = rearrange(t.float(), "b -> b 1") * omega
    return torch.cat([angles.cos(), angles.sin()], -1)


def train_toy(model: ToyMLP, diffusion, data: GaussianMixture, steps: int = 3000, batch_size: int = 512,
              lr: float = 3e-3, p_uncond: float = 0.1, generator: torch.Generator | None = None,
              progress: bool = False) -> list[float]:
    """Fit `model` to fresh draws of `data` with `diffusion.training_loss` (Adam, cosine-decayed learning rate).

    A class-conditional model sees each point's class, replaced by ∅ with probability `p_uncond` so it also learns
    the unconditional prediction for classifier-free guidance. Returns the loss of every step.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    losses = []
    for _ in tqdm(range(steps), desc="training", disable=not progress):
        x0, component = data.sample(batch_size, generator)
        cond = None
        if model.num_classes is not None:
            cond = drop_condition(data.labels[component], model.null_cond, p_uncond, generator)
        loss = diffusion.training_loss(model, x0, cond, generator=generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    return losses
