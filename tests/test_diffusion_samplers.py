"""Every sampler, given the exact score of a Gaussian mixture, must draw that mixture.

Test bed: `ring_mixture()` (six anisotropic 2-D Gaussians, std 0.06-0.30, weights 0.10-0.25). A sample passes when
its component weights, means and covariances (`moment_errors`: absolute weight error, mean error in units of each
component's spread, relative covariance error) are within TOLERANCES at its sample count. The tolerances are ~1.3x
the 99th percentile of the same errors for exact draws from the mixture (checked below), so they measure the
sampler's bias, not the luck of the draw; a sampler with too few steps fails them (also checked).
"""
from functools import partial

import pytest
import torch

from tinyvdm.diffusion import (VESDE, VPSDE, GaussianDiffusion, NFECounter, SubVPSDE, dpm_solver_pp, euler_maruyama,
                               linear_beta_schedule, predictor_corrector, probability_flow_ode)
from tinyvdm.diffusion.toy import ring_mixture

MIXTURE = ring_mixture()
TOLERANCES = {4096: {"weights": 0.03, "means": 0.2, "covs": 0.3},
              8192: {"weights": 0.02, "means": 0.15, "covs": 0.22}}
CHAIN = GaussianDiffusion(linear_beta_schedule(1000))
VP, SUB_VP, VE = VPSDE(), SubVPSDE(), VESDE(sigma_min=0.01, sigma_max=10.0)


def on_chain(sampler, prediction="eps"):
    """Run an SDE sampler on the exact denoiser of the 1000-step chain, through diffusion.sde() / score_fn."""
    diffusion = GaussianDiffusion(linear_beta_schedule(1000), prediction=prediction)
    return lambda shape, steps, **kw: sampler(diffusion.sde(), diffusion.score_fn(MIXTURE.denoiser(diffusion)),
                                              shape, steps, **kw)


def exact(sampler, sde):
    return lambda shape, steps, **kw: sampler(sde, MIXTURE.score_fn(sde), shape, steps, **kw)


SAMPLERS = {  # name: (run(shape, steps, generator=...), steps, sample count)
    "ancestral (1000 steps)": (lambda shape, steps, **kw: CHAIN.sample(MIXTURE.denoiser(CHAIN), shape, **kw),
                               None, 4096),
    "DDIM eta=0": (lambda shape, steps, **kw: CHAIN.ddim_sample(MIXTURE.denoiser(CHAIN), shape, steps, **kw),
                   100, 8192),
    "Euler-Maruyama VP": (exact(euler_maruyama, VP), 200, 4096),
    "Euler-Maruyama sub-VP": (exact(euler_maruyama, SUB_VP), 200, 4096),
    "Euler-Maruyama VE": (exact(euler_maruyama, VE), 200, 4096),
    "Euler-Maruyama on the chain": (on_chain(euler_maruyama), 200, 4096),
    "PC reverse diffusion + Langevin VP": (exact(predictor_corrector, VP), 100, 4096),
    "PC Euler-Maruyama + Langevin VE": (exact(lambda *a, **kw: predictor_corrector(*a, predictor="euler_maruyama",
                                                                                   **kw), VE), 100, 4096),
    "PF-ODE Heun VP": (exact(probability_flow_ode, VP), 50, 8192),
    "PF-ODE Heun sub-VP": (exact(probability_flow_ode, SUB_VP), 50, 8192),
    "PF-ODE Heun VE": (exact(probability_flow_ode, VE), 50, 8192),
    "PF-ODE Euler VP": (exact(lambda *a, **kw: probability_flow_ode(*a, method="euler", **kw), VP), 200, 8192),
    "DPM-Solver++ VP": (exact(dpm_solver_pp, VP), 25, 8192),
    "DPM-Solver++ VE": (exact(dpm_solver_pp, VE), 25, 8192),
    "DPM-Solver++ on the chain, eps model": (on_chain(dpm_solver_pp), 25, 8192),
    "DPM-Solver++ on the chain, v model": (on_chain(dpm_solver_pp, "v"), 25, 8192),
    "SDE-DPM-Solver++ VP": (exact(partial(dpm_solver_pp, eta=1.0), VP), 50, 4096),
    "SDE-DPM-Solver++ VE": (exact(partial(dpm_solver_pp, eta=1.0), VE), 50, 4096),
    "SDE-DPM-Solver++ on the chain, v model": (on_chain(partial(dpm_solver_pp, eta=1.0), "v"), 50, 4096),
}


def failures(x, n):
    errors = MIXTURE.moment_errors(x)
    return {k: round(v, 4) for k, v in errors.items() if v > TOLERANCES[n][k]}


@pytest.mark.parametrize("n", TOLERANCES)
def test_exact_samples_pass_the_tolerances(n):
    for seed in range(10):
        x, _ = MIXTURE.sample(n, torch.Generator().manual_seed(seed))
        assert not failures(x, n), f"exact draws (seed {seed}) exceed the tolerances: {failures(x, n)}"


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_with_the_exact_score_draws_the_mixture(name):
    run, steps, n = SAMPLERS[name]
    x = run((n, 2), steps, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, 2) and torch.isfinite(x).all()
    assert not failures(x, n), \
        f"{name} with {steps} steps misses the mixture's moments beyond tolerance: {failures(x, n)}"


@pytest.mark.parametrize("name, steps", [("DDIM eta=0", 5), ("Euler-Maruyama VP", 10), ("PF-ODE Heun VP", 5),
                                         ("DPM-Solver++ VP", 8), ("SDE-DPM-Solver++ VP", 10)])
def test_too_few_steps_fail_the_same_check(name, steps):
    run, _, n = SAMPLERS[name]
    assert failures(run((n, 2), steps, generator=torch.Generator().manual_seed(0)), n)


@pytest.mark.parametrize("sampler, kwargs, nfe", [
    (euler_maruyama, {}, lambda s: s),
    (predictor_corrector, {}, lambda s: 2 * s),
    (predictor_corrector, {"corrector_steps": 3}, lambda s: 4 * s),
    (probability_flow_ode, {"method": "euler"}, lambda s: s),
    (probability_flow_ode, {"method": "heun"}, lambda s: 2 * s - 1),
    (dpm_solver_pp, {}, lambda s: s),
    (dpm_solver_pp, {"eta": 1.0}, lambda s: s),
])
def test_nfe_is_what_the_docstring_promises(sampler, kwargs, nfe):
    for steps in (1, 7):
        score = NFECounter(MIXTURE.score_fn(VP))
        sampler(VP, score, (16, 2), steps, **kwargs)
        assert score.nfe == nfe(steps)
    model = NFECounter(MIXTURE.denoiser(CHAIN))
    CHAIN.ddim_sample(model, (16, 2), 7)
    assert model.nfe == 7


def test_a_first_order_sde_dpm_solver_step_is_the_ddpm_posterior_draw_of_ddim_eta_one():
    """Two steps on the chain's grid: the first (first order, D = x̂_0) draws from q(x_next | x_t, x̂_0), as DDIM with
    eta = 1 does, from the same noise; the second returns x̂_0."""
    model = MIXTURE.denoiser(CHAIN)
    sde = dpm_solver_pp(CHAIN.sde(), CHAIN.score_fn(model), (64, 2), 2, eta=1.0,
                        generator=torch.Generator().manual_seed(1))
    ddim = CHAIN.ddim_sample(model, (64, 2), 2, eta=1.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(sde, ddim, rtol=0, atol=1e-4)
    ode = dpm_solver_pp(CHAIN.sde(), CHAIN.score_fn(model), (64, 2), 2, generator=torch.Generator().manual_seed(1))
    assert (sde - ode).abs().max() > 0.01  # the noise the ODE does not draw


def test_same_generator_same_samples_and_a_callback_sees_every_state():
    seen = []
    a = predictor_corrector(VP, MIXTURE.score_fn(VP), (64, 2), 10, generator=torch.Generator().manual_seed(3),
                            callback=lambda t, x: seen.append(t))
    b = predictor_corrector(VP, MIXTURE.score_fn(VP), (64, 2), 10, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert len(seen) == 10 and seen[-1] == 0.0


def test_unknown_predictor_or_method_is_rejected():
    with pytest.raises(ValueError, match="predictor must be one of"):
        predictor_corrector(VP, MIXTURE.score_fn(VP), (4, 2), 10, predictor="langevin")
    with pytest.raises(ValueError, match="method must be one of"):
        probability_flow_ode(VP, MIXTURE.score_fn(VP), (4, 2), 10, method="rk45")
    with pytest.raises(ValueError, match="shaped like x_t"):
        dpm_solver_pp(VP, lambda x, t: x[:, :1], (4, 2), 10)
    with pytest.raises(ValueError, match=r"eta must be in \[0, 1\]"):
        dpm_solver_pp(VP, MIXTURE.score_fn(VP), (4, 2), 10, eta=1.5)
