"""Samplers for score SDEs: plain functions with one signature, so a notebook can loop over them.

    x = sampler(sde, score_fn, shape, steps, *, generator=None, device=None, progress=False, callback=None)

Each draws x_1 from the SDE's prior and integrates to t = 0 on `sde.timesteps(steps)`, asking for the score
`score_fn(x, t)` ≈ ∇ log p_t(x) (float t of shape (B,)) only at times t > 0; the last step adds no noise.
`callback(t, x)` sees every state. For a discrete-time model use `diffusion.sde()` and `diffusion.score_fn(model)`.

NFE (number of function evaluations, what a sampler costs) is counted by wrapping the score function:

    score = NFECounter(score_fn)
    x = dpm_solver_pp(sde, score, shape, steps=20)
    score.nfe                                     # 20

With S steps: Euler–Maruyama S, predictor–corrector S (1 + corrector_steps), probability-flow ODE S (Euler)
or 2S − 1 (Heun), DPM-Solver++(2M) S (ODE or SDE). A classifier-free-guided model is one (twice as wide) call
per evaluation.

Song et al. 2021 (Euler–Maruyama, predictor–corrector, probability flow); Karras et al. 2022 (Heun);
Lu et al. 2022 (DPM-Solver++).
"""
from __future__ import annotations

import math

import torch
from einops import reduce
from tqdm.auto import tqdm

from ._batch import checked_call, per_sample, randn
from .sde import SDE

PREDICTORS = ("reverse_diffusion", "euler_maruyama")
ODE_METHODS = ("euler", "heun")


class NFECounter:
    """Wraps a score function or model and counts its calls in `.nfe`."""

    def __init__(self, fn):
        self.fn, self.nfe = fn, 0

    def __call__(self, *args, **kwargs):
        self.nfe += 1
        return self.fn(*args, **kwargs)


def euler_maruyama(sde: SDE, score_fn, shape, steps: int = 1000, *, generator: torch.Generator | None = None,
                   device=None, progress: bool = False, callback=None) -> torch.Tensor:
    """Euler–Maruyama on the reverse SDE: x ← x − [f − g² s] Δt + g √Δt z."""
    ts = sde.timesteps(steps)
    x = sde.prior_sampling(shape, generator, device)
    for i in tqdm(range(steps), desc="euler-maruyama", disable=not progress):
        t, dt = _time(ts[i], x), float(ts[i] - ts[i + 1])
        drift, g = sde.reverse(x, t, checked_call(score_fn, x, t))
        x = x - drift * dt
        if i < steps - 1:
            x = x + g * math.sqrt(dt) * randn(x.shape, generator, x.device, x.dtype)
        _report(callback, ts[i + 1], x)
    return x


def predictor_corrector(sde: SDE, score_fn, shape, steps: int = 500, *, predictor: str = "reverse_diffusion",
                        corrector_steps: int = 1, snr: float = 0.16, generator: torch.Generator | None = None,
                        device=None, progress: bool = False, callback=None) -> torch.Tensor:
    """Predictor–corrector (Song et al. 2021, Algorithms 4-5): at each time, Langevin corrector steps

        x ← x + ε s + √(2ε) z,   ε = 2 a (r ‖z‖ / ‖s‖)²,   a = (α_t / α_{t−Δt})²,   r = `snr`,

    then one predictor step to the next time: "reverse_diffusion" x ← x − f + G² s + G z with (f, G) the exact
    forward step (`sde.discretize`), or "euler_maruyama".
    """
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    if corrector_steps < 0 or snr <= 0:
        raise ValueError(f"expected corrector_steps >= 0 and snr > 0, got {corrector_steps} and {snr}")
    ts = sde.timesteps(steps)
    x = sde.prior_sampling(shape, generator, device)
    for i in tqdm(range(steps), desc="predictor-corrector", disable=not progress):
        t, t_next, dt = _time(ts[i], x), _time(ts[i + 1], x), float(ts[i] - ts[i + 1])
        a = (sde.marginal_coeffs(t)[0] / sde.marginal_coeffs(t_next)[0]) ** 2
        for _ in range(corrector_steps):
            score = checked_call(score_fn, x, t)
            z = randn(x.shape, generator, x.device, x.dtype)
            ratio = _mean_norm(z) / _mean_norm(score)  # norms averaged over the batch, as in Song et al.'s code
            eps = per_sample(2 * a * (snr * ratio) ** 2, x)
            x = x + eps * score + (2 * eps).sqrt() * z
        score = checked_call(score_fn, x, t)
        if predictor == "reverse_diffusion":
            f, G = sde.discretize(x, t, dt)
            x = x - f + G ** 2 * score
        else:
            drift, G = sde.reverse(x, t, score)
            x, G = x - drift * dt, G * math.sqrt(dt)
        if i < steps - 1:
            x = x + G * randn(x.shape, generator, x.device, x.dtype)
        _report(callback, ts[i + 1], x)
    return x


def probability_flow_ode(sde: SDE, score_fn, shape, steps: int = 100, *, method: str = "heun",
                         generator: torch.Generator | None = None, device=None, progress: bool = False,
                         callback=None) -> torch.Tensor:
    """The probability-flow ODE dx/dt = f − ½ g² s, by Euler or Heun (Euler on the last step, where t = 0)."""
    if method not in ODE_METHODS:
        raise ValueError(f"method must be one of {ODE_METHODS}, got {method!r}")
    ts = sde.timesteps(steps)

    def velocity(x, t):
        return sde.reverse(x, t, checked_call(score_fn, x, t), probability_flow=True)[0]

    x = sde.prior_sampling(shape, generator, device)
    for i in tqdm(range(steps), desc=f"probability flow ({method})", disable=not progress):
        t, t_next, dt = _time(ts[i], x), _time(ts[i + 1], x), float(ts[i] - ts[i + 1])
        d = velocity(x, t)
        x_euler = x - d * dt
        x = x - 0.5 * (d + velocity(x_euler, t_next)) * dt if method == "heun" and ts[i + 1] > 0 else x_euler
        _report(callback, ts[i + 1], x)
    return x


def dpm_solver_pp(sde: SDE, score_fn, shape, steps: int = 20, *, eta: float = 0.0,
                  generator: torch.Generator | None = None, device=None, progress: bool = False,
                  callback=None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep solver in λ = log(α/σ), of the probability-flow
    ODE (eta = 0) or of the reverse SDE (eta = 1, SDE-DPM-Solver++(2M)):

        x̂_0 = (x + σ_t² s) / α_t,   D = (1 + 1/(2r)) x̂_0 − 1/(2r) x̂_0,prev,   r = h_prev / h,   h = λ_next − λ_t
        x_next = (σ_next / σ_t) e^{−ηh} x + α_next (1 − e^{−(1+η)h}) D + σ_next √(1 − e^{−2ηh}) z

    with D = x̂_0 on the first step, and x = α_0 x̂_0 on the last (σ = 0, λ = ∞). One score call per step. At
    eta = 1 a first-order step (D = x̂_0) is a draw from DDPM's posterior q(x_next | x_t, x̂_0).
    """
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1] (0: the ODE, 1: the SDE), got {eta}")
    ts = sde.timesteps(steps)
    x = sde.prior_sampling(shape, generator, device)
    x0_prev, h_prev = None, None
    for i in tqdm(range(steps), desc="dpm-solver++(2m)" + " sde" * (eta > 0), disable=not progress):
        t, t_next = _time(ts[i], x), _time(ts[i + 1], x)
        (alpha, sigma), (alpha_next, sigma_next) = sde.marginal_coeffs(t), sde.marginal_coeffs(t_next)
        x0 = (x + per_sample(sigma ** 2, x) * checked_call(score_fn, x, t)) / per_sample(alpha, x)
        if ts[i + 1] == 0:
            x = per_sample(alpha_next, x) * x0
        else:
            h = (alpha_next / sigma_next).log() - (alpha / sigma).log()
            d = x0
            if x0_prev is not None:
                r = per_sample(h_prev / h, x)
                d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
            x = (per_sample(sigma_next / sigma * torch.exp(-eta * h), x) * x
                 - per_sample(alpha_next * torch.expm1(-(1 + eta) * h), x) * d)
            if eta > 0:
                x = x + per_sample(sigma_next * (-torch.expm1(-2 * eta * h)).sqrt(), x) * randn(
                    x.shape, generator, x.device, x.dtype)
            x0_prev, h_prev = x0, h
        _report(callback, ts[i + 1], x)
    return x


def _time(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One time for the whole batch: float tensor (B,) on x's device."""
    return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)


def _mean_norm(v: torch.Tensor) -> torch.Tensor:
    """‖v_b‖ over all non-batch entries, averaged over the batch; a scalar tensor."""
    return reduce(v ** 2, "b ... -> b", "sum").sqrt().mean()


def _report(callback, t: torch.Tensor, x: torch.Tensor) -> None:
    if callback is not None:
        callback(float(t), x)
