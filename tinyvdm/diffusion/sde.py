"""Score SDEs: dx = f(x, t) dt + g(t) dw on t ∈ [0, 1], and their reverses (Song et al. 2021).

Every SDE here is linear, so its marginals are Gaussian: x_t = α_t x_0 + σ_t z, z ~ N(0, I).

    VP     (DDPM in the limit)   dx = −½ β(t) x dt + √β(t) dw                    α_t = e^{−½∫β},  σ_t² = 1 − α_t²
    sub-VP                       dx = −½ β(t) x dt + √(β(t)(1 − e^{−2∫β})) dw   α_t = e^{−½∫β},  σ_t  = 1 − α_t²
    VE     (SMLD in the limit)   dx = σ(t) √(2 log(σ_max/σ_min)) dw             α_t = 1,  σ_t² = σ(t)² − σ_min²

with β(t) = β_min + t (β_max − β_min) and σ(t) = σ_min (σ_max/σ_min)^t. Time runs from the data (t = 0)
to the prior (t = 1). Given the score ∇ log p_t(x), the reverse SDE and the probability-flow ODE

    dx = [f − g² ∇ log p_t] dt + g dw̄        and        dx/dt = f − ½ g² ∇ log p_t

have the same marginals p_t as the forward SDE, so integrating either from t = 1 to 0 draws from the data.
Times t are float tensors of shape (B,); per-sample coefficients come back shaped (B, 1, …, 1).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from ._batch import check_steps, per_sample, randn
from .schedules import alpha_bar


class SDE(ABC):
    """A linear SDE with Gaussian marginals; subclasses give `sde` and `marginal_coeffs` (and `prior_std`)."""

    T = 1.0
    prior_std = 1.0

    @abstractmethod
    def sde(self, x: torch.Tensor, t: torch.Tensor):
        """(drift f(x, t), diffusion g(t)) of the forward SDE; g is shaped (B, 1, …, 1)."""

    @abstractmethod
    def marginal_coeffs(self, t: torch.Tensor):
        """(α_t, σ_t), each (B,), such that p_t(x_t | x_0) = N(α_t x_0, σ_t² I)."""

    def marginal_prob(self, x0: torch.Tensor, t: torch.Tensor):
        """(mean α_t x_0, std σ_t) of p_t(x_t | x_0); std is shaped (B, 1, …, 1)."""
        alpha, sigma = self.marginal_coeffs(self._check_time(t))
        return per_sample(alpha, x0) * x0, per_sample(sigma, x0)

    def prior_sampling(self, shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """x_1 ~ p_1 ≈ N(0, prior_std² I)."""
        return self.prior_std * randn(shape, generator, device)

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, prior_std² I) per sample, shape (B,)."""
        d = z[0].numel()
        return (-0.5 * (z.flatten(1) ** 2).sum(1) / self.prior_std ** 2
                - d * math.log(self.prior_std * math.sqrt(2 * math.pi)))

    def reverse(self, x: torch.Tensor, t: torch.Tensor, score: torch.Tensor, probability_flow: bool = False):
        """(drift, diffusion) of the reverse-time SDE f − g² s, g — or of the probability-flow ODE f − ½ g² s, 0."""
        drift, g = self.sde(x, t)
        if probability_flow:
            return drift - 0.5 * g ** 2 * score, torch.zeros_like(g)
        return drift - g ** 2 * score, g

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float):
        """(f, G) of the exact Gaussian step from t − dt to t: x_t = x_{t−dt} + f + G z.

        With a = α_t / α_{t−dt}: f = (a − 1) x and G² = σ_t² − a² σ_{t−dt}². For the VP SDE on a DDPM grid this
        is q(x_t | x_{t−1}): a = √(1 − β_t), G² = β_t.
        """
        alpha, sigma = self.marginal_coeffs(self._check_time(t))
        alpha_prev, sigma_prev = self.marginal_coeffs((t - dt).clamp(min=0))
        a = alpha / alpha_prev
        return per_sample(a - 1, x) * x, per_sample((sigma ** 2 - a ** 2 * sigma_prev ** 2).clamp(min=0).sqrt(), x)

    def timesteps(self, steps: int) -> torch.Tensor:
        """The sampling grid T = t_0 > t_1 > … > t_steps = 0, evenly spaced, float64 of shape (steps + 1,)."""
        check_steps(steps)
        return torch.linspace(self.T, 0.0, steps + 1, dtype=torch.float64)

    def _check_time(self, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.ndim != 1:
            got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"expected float times t of shape (B,), got {got}")
        if t.min() < 0 or t.max() > self.T:
            raise ValueError(f"expected times t in [0, {self.T}], "
                             f"got values in [{t.min().item():.4g}, {t.max().item():.4g}]")
        return t


class VPSDE(SDE):
    """Variance preserving: dx = −½ β(t) x dt + √β(t) dw, β linear from β_min to β_max (DDPM as N → ∞)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, eps: float = 1e-3):
        self.beta_min, self.beta_max, self.eps = beta_min, beta_max, eps

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta_min={self.beta_min}, beta_max={self.beta_max}, eps={self.eps})"

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> "DiscreteVPSDE":
        """The VP SDE that passes through a discrete chain: α_t² = ᾱ_step exactly at t = (step + 1) / N."""
        return DiscreteVPSDE(betas)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """β(t)."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated_beta(self, t: torch.Tensor) -> torch.Tensor:
        """∫_0^t β(s) ds = β_min t + ½ (β_max − β_min) t²."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t ** 2

    def sde(self, x, t):
        beta = per_sample(self.beta(self._check_time(t)), x)
        return -0.5 * beta * x, beta.sqrt()

    def marginal_coeffs(self, t):
        b = self.integrated_beta(t)
        return (-0.5 * b).exp(), (-torch.expm1(-b)).sqrt()

    def timesteps(self, steps):
        """T = t_0 > … > t_{S−1} = eps spaced quadratically, dense near the data where p_t changes fastest
        (the "quadratic" steps of Song et al.'s DDIM), then t_S = 0."""
        check_steps(steps)
        root = torch.linspace(math.sqrt(self.T), math.sqrt(self.eps), steps, dtype=torch.float64)
        return torch.cat([root ** 2, torch.zeros(1, dtype=torch.float64)])


class DiscreteVPSDE(VPSDE):
    """The VP SDE through a DDPM chain: log α_t² interpolates log ᾱ linearly between t = step / N and (step + 1) / N.

    β(t) is then piecewise constant, −N log(1 − β_step), so the exact `discretize` step on this grid is DDPM's
    q(x_t | x_{t−1}); `timesteps` lands on the chain's steps so a discrete model is only asked about its own steps.
    """

    def __init__(self, betas: torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        self.num_steps = len(betas)
        self.eps = 1 / self.num_steps
        self.betas = betas
        self.log_alpha_bar = torch.cat([torch.zeros(1, dtype=torch.float64), alpha_bar(betas).log()])  # at t = i / N

    def __repr__(self) -> str:
        return f"DiscreteVPSDE(num_steps={self.num_steps})"

    def beta(self, t):
        step = (t * self.num_steps).ceil().long().clamp(1, self.num_steps) - 1
        return -self.num_steps * torch.log1p(-self.betas.to(t.dtype).to(t.device)[step])

    def integrated_beta(self, t):
        position = t * self.num_steps
        lo = position.floor().long().clamp(0, self.num_steps - 1)
        table = self.log_alpha_bar.to(t.dtype).to(t.device)
        return -(table[lo] + (position - lo) * (table[lo + 1] - table[lo]))

    def timesteps(self, steps):
        """Steps of the chain N − 1 = s_0 > … > s_{S−1} = 0 spaced quadratically (at least one apart), as times
        t = (s + 1) / N, then t_S = 0. With S = N this is every step."""
        check_steps(steps, self.num_steps)
        ideal = (self.num_steps - 1) * torch.linspace(1, 0, steps, dtype=torch.float64) ** 2
        gap = torch.arange(steps - 1, -1, -1, dtype=torch.float64)  # s_i ≥ s_{i+1} + 1  ⇔  s_i − gap_i non-increasing
        s = (ideal.round() - gap).flip(0).cummax(0).values.flip(0) + gap
        return torch.cat([(s + 1) / self.num_steps, torch.zeros(1, dtype=torch.float64)])


class SubVPSDE(VPSDE):
    """Sub-variance preserving: the VP drift with diffusion √(β(t)(1 − e^{−2∫β})), so σ_t = 1 − α_t² ≤ VP's."""

    def sde(self, x, t):
        drift, _ = super().sde(x, t)
        g2 = self.beta(t) * -torch.expm1(-2 * self.integrated_beta(t))
        return drift, per_sample(g2.sqrt(), x)

    def marginal_coeffs(self, t):
        b = self.integrated_beta(t)
        return (-0.5 * b).exp(), -torch.expm1(-b)


class VESDE(SDE):
    """Variance exploding: dx = σ(t) √(2 log(σ_max/σ_min)) dw with σ(t) = σ_min (σ_max/σ_min)^t (SMLD as N → ∞).

    The marginal std from x_0 at time 0 is √(σ(t)² − σ_min²); Song et al. use σ(t) itself, which treats
    the data as already blurred by σ_min. The prior is N(0, σ_max² I).
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.prior_std = sigma_max

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max})"

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """σ(t) = σ_min (σ_max/σ_min)^t."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def sde(self, x, t):
        g = self.sigma(self._check_time(t)) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))
        return torch.zeros_like(x), per_sample(g, x)

    def marginal_coeffs(self, t):
        log_ratio = math.log(self.sigma_max / self.sigma_min)
        return torch.ones_like(t), self.sigma_min * torch.expm1(2 * t * log_ratio).sqrt()
