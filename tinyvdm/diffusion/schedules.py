"""Noise schedules of a discrete diffusion chain, and how its steps map to continuous time.

A schedule is the vector β_0 … β_{N-1} of per-step noise variances (float64, shape (N,)).
Everything else follows from it:  ᾱ_t = ∏_{s≤t} (1 − β_s)  and  SNR_t = ᾱ_t / (1 − ᾱ_t),
so that q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I).  Step t of an N-step chain sits at time
(t + 1) / N of the continuous-time SDE on (0, 1]; the data sit at time 0.

Linear: Ho et al. 2020 (DDPM).  Cosine: Nichol & Dhariwal 2021.  Sigmoid: Jabri et al. 2022.
"""
from __future__ import annotations

import math

import torch


def linear_beta_schedule(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t linear from β_start to β_end, both scaled by 1000 / N so every N discretises the same SDE.

    With the defaults, N → ∞ gives the VP SDE with β(t) = 0.1 + 19.9 t (`VPSDE()`).
    """
    _check_num_steps(num_steps)
    scale = 1000 / num_steps
    return torch.linspace(scale * beta_start, scale * beta_end, num_steps, dtype=torch.float64)


def cosine_beta_schedule(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """β_t = 1 − ᾱ_t / ᾱ_{t−1} with ᾱ(τ) = cos²((τ + s) / (1 + s) · π/2) / cos²(s / (1 + s) · π/2), τ = (t + 1) / N."""
    _check_num_steps(num_steps)
    tau = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((tau + s) / (1 + s) * math.pi / 2) ** 2
    return _betas_from_alpha_bar(f / f[0], max_beta)


def sigmoid_beta_schedule(num_steps: int = 1000, start: float = -3.0, end: float = 3.0, tau: float = 1.0,
                          max_beta: float = 0.999) -> torch.Tensor:
    """β_t from ᾱ(τ) = (σ(end/τ_s) − σ((τ (end − start) + start) / τ_s)) / (σ(end/τ_s) − σ(start/τ_s)), τ_s = `tau`."""
    _check_num_steps(num_steps)
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    lo, hi = (torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64)),
              torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64)))
    f = (hi - torch.sigmoid((t * (end - start) + start) / tau)) / (hi - lo)
    return _betas_from_alpha_bar(f, max_beta)


def alpha_bar(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = ∏_{s≤t} (1 − β_s)."""
    return torch.cumprod(1 - betas, dim=0)


def snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio SNR_t = ᾱ_t / (1 − ᾱ_t)."""
    return alpha_bar / (1 - alpha_bar)


def step_to_time(step: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Continuous time of a discrete step: t = (step + 1) / N, so step N − 1 is t = 1."""
    return (step + 1) / num_steps


def time_to_step(t: torch.Tensor, num_steps: int) -> torch.Tensor:
    """The discrete step at time t = (step + 1) / N, as int64; t must lie on that grid."""
    position = t * num_steps - 1
    step = position.round()
    if (position - step).abs().max() > 1e-3 or step.min() < 0 or step.max() > num_steps - 1:
        raise ValueError(f"expected times on the grid (step + 1) / {num_steps} of a {num_steps}-step chain, "
                         f"got t in [{t.min().item():.6g}, {t.max().item():.6g}] "
                         f"with an off-grid or out-of-range value")
    return step.long()


def _betas_from_alpha_bar(alpha_bar_grid: torch.Tensor, max_beta: float) -> torch.Tensor:
    # alpha_bar_grid[0] = ᾱ at the data (= 1); β_t = 1 − ᾱ_t / ᾱ_{t−1}, clipped so no step destroys all signal.
    return (1 - alpha_bar_grid[1:] / alpha_bar_grid[:-1]).clamp(max=max_beta)


def _check_num_steps(num_steps: int) -> None:
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
