"""The discrete diffusion chain: forward q, learned reverse p_θ, the training loss, ancestral and DDIM sampling.

Ho et al. 2020 (DDPM) for q, p_θ and the loss; Song, Meng & Ermon 2021 (DDIM) for the deterministic
sampler and its inversion; Salimans & Ho 2022 for v-prediction; Hang et al. 2023 for min-SNR weighting.

    q(x_t | x_{t−1}) = N(√(1 − β_t) x_{t−1}, β_t I)              one step forward      (eq. 2)
    q(x_t | x_0)     = N(√ᾱ_t x_0, (1 − ᾱ_t) I)                   any step in one go   (eq. 4)
    q(x_{t−1} | x_t, x_0) = N(μ̃_t(x_t, x_0), β̃_t I)              the posterior        (eqs. 6-7)
    p_θ(x_{t−1} | x_t)    = N(μ̃_t(x_t, x̂_0(x_t, t)), σ_t² I)    the learned reverse

`GaussianDiffusion` works on tensors of any shape (B, …) and any denoiser `model(x_t, t, cond=None)`
that takes integer steps t of shape (B,) in [0, N) and predicts ε, x_0 or v = √ᾱ_t ε − √(1 − ᾱ_t) x_0.
To run the SDE samplers (e.g. DPM-Solver++) on such a model:

    dpm_solver_pp(diffusion.sde(), diffusion.score_fn(model, cond), shape, steps=20)
"""
from __future__ import annotations

import torch
from einops import reduce
from tqdm.auto import tqdm

from ._batch import checked_call, per_sample, randn
from .schedules import alpha_bar, snr, time_to_step
from .sde import VPSDE, DiscreteVPSDE

PREDICTIONS = ("eps", "x0", "v")
VARIANCES = ("small", "large")


class GaussianDiffusion:
    """The DDPM chain for a schedule β_0 … β_{N−1}, a model parametrisation, and an optional min-SNR-γ loss weight."""

    def __init__(self, betas: torch.Tensor, prediction: str = "eps", min_snr_gamma: float | None = None,
                 clip_x0: float | None = None):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or len(betas) < 1 or betas.min() <= 0 or betas.max() >= 1:
            raise ValueError(f"expected betas as a 1-D tensor with values in (0, 1), got shape {tuple(betas.shape)} "
                             f"and range [{betas.min().item():.3g}, {betas.max().item():.3g}]")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if min_snr_gamma is not None and min_snr_gamma <= 0:
            raise ValueError(f"min_snr_gamma must be positive (or None for no weighting), got {min_snr_gamma}")
        if clip_x0 is not None and clip_x0 <= 0:
            raise ValueError(f"clip_x0 must be positive (or None for no clipping), got {clip_x0}")
        self.prediction, self.min_snr_gamma, self.clip_x0 = prediction, min_snr_gamma, clip_x0
        self.num_steps = len(betas)
        self.betas = betas
        self.alpha_bar = alpha_bar(betas)
        self.alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        self.sqrt_alpha_bar = self.alpha_bar.sqrt()
        self.sqrt_one_minus_alpha_bar = (1 - self.alpha_bar).sqrt()
        self.snr = snr(self.alpha_bar)
        # β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t); it is 0 at t = 0, so its log is clipped to log β̃_1 there.
        self.posterior_variance = betas * (1 - self.alpha_bar_prev) / (1 - self.alpha_bar)
        floor = self.posterior_variance[1] if self.num_steps > 1 else betas[0]
        self.posterior_log_variance = torch.cat([floor.reshape(1), self.posterior_variance[1:]]).log()
        self.posterior_x0_coef = betas * self.alpha_bar_prev.sqrt() / (1 - self.alpha_bar)
        self.posterior_xt_coef = (1 - self.alpha_bar_prev) * (1 - betas).sqrt() / (1 - self.alpha_bar)
        self.loss_weight = self._min_snr_weight() if min_snr_gamma is not None else torch.ones_like(betas)

    def __repr__(self) -> str:
        return (f"GaussianDiffusion(num_steps={self.num_steps}, prediction={self.prediction!r}, "
                f"min_snr_gamma={self.min_snr_gamma}, clip_x0={self.clip_x0})")

    # --- the forward chain q ---------------------------------------------------------------------------------

    def q_step(self, x_prev: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One forward step x_t ~ q(x_t | x_{t−1}) = N(√(1 − β_t) x_{t−1}, β_t I)   (DDPM eq. 2)."""
        return self._at((1 - self.betas).sqrt(), t, x_prev) * x_prev + self._at(self.betas.sqrt(), t, x_prev) * noise

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample x_t ~ q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) as x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε   (DDPM eq. 4)."""
        return self._at(self.sqrt_alpha_bar, t, x0) * x0 + self._at(self.sqrt_one_minus_alpha_bar, t, x0) * noise

    def replacement(self, known: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor):
        """The replacement method (VDM §3.1) as a sampler callback(t, x): the entries `mask` (bool, broadcastable) of x
        become `known` noised to step t with the fixed ε `noise`, q(x_t | known); at t = −1, `known` itself."""
        def put_back(t: int, x: torch.Tensor) -> torch.Tensor:
            steps = torch.full((len(x),), max(t, 0), device=x.device)
            return torch.where(mask, known if t < 0 else self.q_sample(known, steps, noise), x)
        return put_back

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """q(x_{t−1} | x_t, x_0) = N(μ̃, β̃_t I) with
        μ̃ = √ᾱ_{t−1} β_t / (1 − ᾱ_t) x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) x_t.

        Returns (mean, variance, log_variance); variance and log_variance are shaped (B, 1, …, 1)   (DDPM eqs. 6-7).
        """
        mean = self._at(self.posterior_x0_coef, t, x_t) * x0 + self._at(self.posterior_xt_coef, t, x_t) * x_t
        return mean, self._at(self.posterior_variance, t, x_t), self._at(self.posterior_log_variance, t, x_t)

    # --- what the model predicts ---------------------------------------------------------------------------

    def target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the model should output for x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε: ε, x_0, or v = √ᾱ_t ε − √(1 − ᾱ_t) x_0."""
        if self.prediction == "eps":
            return eps
        if self.prediction == "x0":
            return x0
        return self._at(self.sqrt_alpha_bar, t, x0) * eps - self._at(self.sqrt_one_minus_alpha_bar, t, x0) * x0

    def predict_x0(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x̂_0 from the model output: (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, x̂_0 itself, or √ᾱ_t x_t − √(1 − ᾱ_t) v̂."""
        a, s = self._at(self.sqrt_alpha_bar, t, x_t), self._at(self.sqrt_one_minus_alpha_bar, t, x_t)
        if self.prediction == "eps":
            return (x_t - s * output) / a
        if self.prediction == "x0":
            return output
        return a * x_t - s * output

    def predict_eps(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ε̂ from the model output: ε̂ itself, (x_t − √ᾱ_t x̂_0) / √(1 − ᾱ_t), or √(1 − ᾱ_t) x_t + √ᾱ_t v̂."""
        a, s = self._at(self.sqrt_alpha_bar, t, x_t), self._at(self.sqrt_one_minus_alpha_bar, t, x_t)
        if self.prediction == "eps":
            return output
        if self.prediction == "x0":
            return (x_t - a * output) / s
        return s * x_t + a * output

    def denoise(self, model, x_t: torch.Tensor, t: torch.Tensor, cond=None):
        """(x̂_0, ε̂) from one model call: what every sampler uses.

        With `clip_x0` = c, x̂_0 is clamped to [−c, c] and ε̂ = (x_t − √ᾱ_t x̂_0) / √(1 − ᾱ_t) follows it, as in DDPM's
        code: where ᾱ_t ≈ 0 (the end of the cosine schedule), x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t multiplies any error
        of an ε-model by 1/√ᾱ_t, and data known to lie in [−c, c] bound it.
        """
        output = checked_call(model, x_t, t, cond)
        x0 = self.predict_x0(output, x_t, t)
        if self.clip_x0 is None:
            return x0, self.predict_eps(output, x_t, t)
        x0 = x0.clamp(-self.clip_x0, self.clip_x0)
        eps = (x_t - self._at(self.sqrt_alpha_bar, t, x_t) * x0) / self._at(self.sqrt_one_minus_alpha_bar, t, x_t)
        return x0, eps

    # --- the reverse chain p_θ -----------------------------------------------------------------------------

    def p_mean_variance(self, model, x_t: torch.Tensor, t: torch.Tensor, cond=None, variance: str = "small"):
        """p_θ(x_{t−1} | x_t) = N(μ̃_t(x_t, x̂_0), σ_t² I) with σ_t² = β̃_t ("small") or β_t ("large").

        Returns (mean, variance, log_variance) like `q_posterior`; DDPM §3.2 shows both fixed variances work.
        """
        if variance not in VARIANCES:
            raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
        x0, _ = self.denoise(model, x_t, t, cond)
        mean, var, log_var = self.q_posterior(x0, x_t, t)
        if variance == "large":
            var, log_var = self._at(self.betas, t, x_t), self._at(self.betas.log(), t, x_t)
        return mean, var, log_var

    def p_sample(self, model, x_t: torch.Tensor, t: torch.Tensor, cond=None, *, variance: str = "small",
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """One reverse step x_{t−1} = μ_θ(x_t, t) + σ_t z, with no noise at t = 0   (DDPM Algorithm 2)."""
        mean, _, log_var = self.p_mean_variance(model, x_t, t, cond, variance)
        noise = randn(x_t.shape, generator, x_t.device, x_t.dtype)
        return mean + per_sample((t > 0).to(x_t.dtype), x_t) * (0.5 * log_var).exp() * noise

    def sample(self, model, shape, cond=None, *, variance: str = "small", generator: torch.Generator | None = None,
               device=None, progress: bool = False, callback=None) -> torch.Tensor:
        """Ancestral sampling: x_T ~ N(0, I), then N reverse steps x_{t−1} ~ p_θ(x_{t−1} | x_t)   (DDPM Algorithm 2).

        `callback(t, x)`, if given, sees each x_{t−1} with t − 1 (−1 is the data).
        """
        x = randn(shape, generator, device)
        for i in tqdm(range(self.num_steps - 1, -1, -1), desc="ancestral", disable=not progress):
            x = self.p_sample(model, x, self._steps(i, x), cond, variance=variance, generator=generator)
            if callback is not None:
                callback(i - 1, x)
        return x

    def ddim_sample(self, model, shape, steps: int = 50, eta: float = 0.0, cond=None, *,
                    x_T: torch.Tensor | None = None,
                    t_start: int | None = None, generator: torch.Generator | None = None, device=None,
                    progress: bool = False, callback=None, resample: int = 1) -> torch.Tensor:
        """DDIM on `steps` steps t_start = τ_0 > … > τ_{S−1} = 0, spaced quadratically (see `DiscreteVPSDE.timesteps`):

            x_{τ'} = √ᾱ_{τ'} x̂_0 + √(1 − ᾱ_{τ'} − σ²) ε̂ + σ z,   σ = η √((1 − ᾱ_{τ'}) / (1 − ᾱ_τ)) √(1 − ᾱ_τ / ᾱ_{τ'})

        (Song et al. 2021, eq. 12). η = 0 is deterministic; η = 1 with steps = N is DDPM with σ² = β̃_t.
        Starts from `x_T` at step `t_start` (default N − 1) if given (e.g. from `ddim_invert`, or a noised video for
        SDEdit), else from N(0, I). `callback(t, x)`, if given, sees each x_{τ'} with τ' (−1 is the data); if it
        returns a tensor, sampling goes on from that one (e.g. known pixels put back, as in a masked edit).

        `resample` = U > 1 takes every step U times (RePaint, Lugmayr et al. 2022): after the step and its callback,
        x_{τ'} goes back to τ by the forward chain, x_τ = √(ᾱ_τ / ᾱ_τ') x_{τ'} + √(1 − ᾱ_τ / ᾱ_τ') z, and the step is
        taken again, so what a callback put back is harmonised with the rest over U model calls per step.
        """
        if t_start is not None and not 0 <= t_start < self.num_steps:
            raise ValueError(f"t_start must be a step of the chain in [0, {self.num_steps}), got {t_start}")
        if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
            raise ValueError(f"resample must be an int >= 1 (times each step is taken), got {resample!r}")
        grid = self._ddim_grid(steps, t_start)
        x = randn(shape, generator, device) if x_T is None else x_T
        for t, t_prev in tqdm(list(zip(grid[:-1], grid[1:])), desc="ddim", disable=not progress):
            a_t, a_prev = self._alpha_bar_at(t), self._alpha_bar_at(t_prev)
            sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
            for u in range(resample if t_prev >= 0 else 1):
                if u:
                    x = (a_t / a_prev).sqrt() * x + (1 - a_t / a_prev).sqrt() * randn(x.shape, generator, x.device,
                                                                                        x.dtype)
                x0, eps = self.denoise(model, x, self._steps(t, x), cond)
                x = a_prev.sqrt() * x0 + (1 - a_prev - sigma ** 2).sqrt() * eps
                if eta > 0:
                    x = x + sigma * randn(x.shape, generator, x.device, x.dtype)
                if callback is not None:
                    replaced = callback(t_prev, x)
                    x = x if replaced is None else replaced
        return x

    def ddim_invert(self, model, x0: torch.Tensor, steps: int = 50, cond=None, *, fixed_point_iters: int = 0,
                    progress: bool = False) -> torch.Tensor:
        """Run deterministic DDIM backwards, data → x_T, so that `ddim_sample(..., x_T=...)` returns x0.

        Each step τ' → τ solves x_τ = √(ᾱ_τ / ᾱ_τ') (x_τ' − √(1 − ᾱ_τ') ε̂(x_τ, τ)) + √(1 − ᾱ_τ) ε̂(x_τ, τ),
        the inverse of one η = 0 DDIM step. Plain inversion evaluates ε̂ at x_τ' (Dhariwal & Nichol 2021);
        `fixed_point_iters` > 0 refines x_τ by fixed-point iteration (Pan et al. 2023), making the round trip exact.
        """
        if fixed_point_iters < 0:
            raise ValueError(f"fixed_point_iters must be >= 0, got {fixed_point_iters}")
        x = x0
        grid = self._ddim_grid(steps).flip(0)
        for t_prev, t in tqdm(list(zip(grid[:-1], grid[1:])), desc="ddim inversion", disable=not progress):
            a_t, a_prev = self._alpha_bar_at(t), self._alpha_bar_at(t_prev)
            x_next, step = x, self._steps(t, x)
            for _ in range(fixed_point_iters + 1):
                _, eps = self.denoise(model, x_next, step, cond)
                x_next = (a_t / a_prev).sqrt() * (x - (1 - a_prev).sqrt() * eps) + (1 - a_t).sqrt() * eps
            x = x_next
        return x

    # --- training ----------------------------------------------------------------------------------------------

    def training_loss(self, model, x0: torch.Tensor, cond=None, *, t: torch.Tensor | None = None,
                      noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """E_{t, ε} w_t ‖f_θ(x_t, t) − target‖² with x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε and t ~ U{0, …, N − 1}.

        target is ε, x_0 or v (see `target`); w_t = 1, or the min-SNR-γ weight when `min_snr_gamma` is set.
        The squared error is averaged over every entry of a sample, then over the batch.
        """
        if t is None:
            source = generator.device if generator is not None else torch.device("cpu")
            t = torch.randint(0, self.num_steps, (x0.shape[0],), generator=generator, device=source).to(x0.device)
        if noise is None:
            noise = randn(x0.shape, generator, x0.device, x0.dtype)
        x_t = self.q_sample(x0, t, noise)
        error = (checked_call(model, x_t, t, cond) - self.target(x0, noise, t)) ** 2
        per_example = reduce(error, "b ... -> b", "mean")  # (B, …) -> (B,)
        return (per_example * self.loss_weight.to(x0.dtype).to(x0.device)[t]).mean()

    # --- bridges to the continuous-time SDE samplers -------------------------------------------------------------

    def sde(self) -> DiscreteVPSDE:
        """The VP SDE whose marginals equal this chain's at times t = (step + 1) / N (see `VPSDE.from_betas`)."""
        return VPSDE.from_betas(self.betas)

    def score_fn(self, model, cond=None):
        """score_fn(x, t) = −ε̂(x, step) / √(1 − ᾱ_step) at step = tN − 1, for the samplers in `samplers.py`
        (the denoising score-matching identity ∇ log q(x_t) = −E[ε | x_t] / √(1 − ᾱ_t))."""
        def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            step = time_to_step(t, self.num_steps).to(x.device)
            return -self.denoise(model, x, step, cond)[1] / self._at(self.sqrt_one_minus_alpha_bar, step, x)
        return score

    # --- helpers ---------------------------------------------------------------------------------------------------

    def _at(self, values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """values[t] shaped (B, 1, …, 1) for integer steps t of shape (B,) in [0, N)."""
        if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int64, torch.int32) or t.shape != (x.shape[0],):
            got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"expected integer steps t of shape ({x.shape[0]},), got {got}")
        low, high = t.aminmax()
        if low < 0 or high >= self.num_steps:
            raise ValueError(f"expected steps t in [0, {self.num_steps}), got values in [{low.item()}, {high.item()}]")
        return per_sample(values[t.cpu()], x)

    def _steps(self, step, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), int(step), dtype=torch.long, device=x.device)

    def _ddim_grid(self, steps: int, start: int | None = None) -> torch.Tensor:
        """start = τ_0 > … > τ_{S−1} = 0 (default start = N − 1), the quadratic grid of `DiscreteVPSDE.timesteps` for
        the chain's first start + 1 steps, then −1 for the data."""
        n = self.num_steps if start is None else start + 1
        return (VPSDE.from_betas(self.betas[:n]).timesteps(steps) * n).round().long() - 1

    def _alpha_bar_at(self, step) -> torch.Tensor:
        """ᾱ at one step as a float64 scalar, with ᾱ_{−1} = 1 at the data."""
        return self.alpha_bar[step] if step >= 0 else torch.ones((), dtype=torch.float64)

    def _min_snr_weight(self) -> torch.Tensor:
        """min(SNR_t, γ) expressed for the model's own target: ÷ SNR for ε, ×1 for x_0, ÷ (SNR + 1) for v."""
        clipped = self.snr.clamp(max=self.min_snr_gamma)
        return {"eps": clipped / self.snr, "x0": clipped, "v": clipped / (self.snr + 1)}[self.prediction]
