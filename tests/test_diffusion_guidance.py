"""Classifier-free guidance against closed forms, with every sampler, and condition dropout."""
import pytest
import torch

from tinyvdm.diffusion import (GaussianDiffusion, classifier_free_guidance, dpm_solver_pp, drop_condition,
                               euler_maruyama, linear_beta_schedule, predictor_corrector, probability_flow_ode)
from tinyvdm.diffusion.toy import GaussianMixture, ring_mixture

CHAIN = GaussianDiffusion(linear_beta_schedule(1000))
# Class c ~ N(μ_c, Σ) and "no class" ~ N(μ_∅, Σ) share Σ, so at every noise level the guided score
# (1 − w) ∇ log p_t(x | ∅) + w ∇ log p_t(x | c) is the score of the noised N(μ_∅ + w (μ_c − μ_∅), Σ):
# every sampler must then draw exactly that Gaussian.
MU_CLASS, MU_NULL = torch.tensor([1.0, 0.5]), torch.tensor([-0.5, 0.0])
SIGMA = torch.tensor([[0.09, 0.03], [0.03, 0.05]])
CLASS, NULL = 1, 0
N = 4096
TOLERANCE = {"means": 0.07, "covs": 0.12}  # ~1.5x the 99th percentile for N exact draws, x √(N / n) for n draws


def two_gaussians(diffusion):
    """The exact conditional denoiser: class CLASS is N(μ_c, Σ), the null condition NULL is N(μ_∅, Σ)."""
    with_class = GaussianMixture([1.0], [MU_CLASS], [SIGMA]).denoiser(diffusion)
    without = GaussianMixture([1.0], [MU_NULL], [SIGMA]).denoiser(diffusion)

    def model(x, t, cond):
        out, rows = torch.empty_like(x), cond == CLASS
        out[rows], out[~rows] = with_class(x[rows], t[rows]), without(x[~rows], t[~rows])
        return out
    return model


def guided_gaussian(scale):
    return GaussianMixture([1.0], [MU_NULL + scale * (MU_CLASS - MU_NULL)], [SIGMA])


def misses(target, x):
    errors, scale = target.moment_errors(x), (N / len(x)) ** 0.5
    return {k: round(errors[k], 4) for k in TOLERANCE if errors[k] > scale * TOLERANCE[k]}


def sde_sampler(sampler, steps):
    def run(guided, cond, generator):
        return sampler(CHAIN.sde(), CHAIN.score_fn(guided, cond), (len(cond), 2), steps, generator=generator)
    return run


SAMPLERS = {  # name: (run, number of draws)
    "ancestral": (lambda guided, cond, generator: CHAIN.sample(guided, (len(cond), 2), cond, generator=generator),
                  N // 2),
    "DDIM": (lambda guided, cond, generator: CHAIN.ddim_sample(guided, (len(cond), 2), 100, cond=cond,
                                                               generator=generator), N),
    "Euler-Maruyama": (sde_sampler(euler_maruyama, 200), N),
    "predictor-corrector": (sde_sampler(predictor_corrector, 100), N),
    "PF-ODE": (sde_sampler(probability_flow_ode, 25), N),
    "DPM-Solver++": (sde_sampler(dpm_solver_pp, 25), N),
}


@pytest.mark.parametrize("n", [N // 2, N])
def test_exact_draws_pass(n):
    target = guided_gaussian(2.5)
    for seed in range(10):
        assert not misses(target, target.sample(n, torch.Generator().manual_seed(seed))[0])


@pytest.mark.parametrize("name", SAMPLERS)
def test_guided_gaussian_closed_form_with_every_sampler(name):
    scale = 2.5
    run, n = SAMPLERS[name]
    guided = classifier_free_guidance(two_gaussians(CHAIN), scale, null_cond=NULL)
    x = run(guided, torch.full((n,), CLASS), torch.Generator().manual_seed(0))
    assert not misses(guided_gaussian(scale), x), \
        f"{name}: guided samples should be N(μ_∅ + {scale}(μ_c − μ_∅), Σ); errors {misses(guided_gaussian(scale), x)}"


@pytest.mark.parametrize("scale", [0.0, 1.0, 4.0])
def test_guided_mean_moves_linearly_with_the_scale(scale):
    guided = classifier_free_guidance(two_gaussians(CHAIN), scale, null_cond=NULL)
    x = SAMPLERS["DPM-Solver++"][0](guided, torch.full((N,), CLASS), torch.Generator().manual_seed(1))
    assert not misses(guided_gaussian(scale), x)


def test_guidance_on_a_mixture_trades_diversity_for_class_fidelity():
    """Scale 0 draws p(x), scale 1 draws p(x | c); beyond 1, samples sit ever more surely in class c (p(c | x) → 1)
    and spread ever less (total variance falls)."""
    mixture = ring_mixture()
    model = mixture.denoiser(CHAIN)
    cond = torch.zeros(N, dtype=torch.long)
    fidelity, spread = [], []
    for scale in (0.0, 1.0, 2.0, 4.0):
        guided = classifier_free_guidance(model, scale, null_cond=mixture.null_cond)
        x = SAMPLERS["DPM-Solver++"][0](guided, cond, torch.Generator().manual_seed(2))
        if scale == 0:
            assert mixture.moment_errors(x)["covs"] < 0.3, "scale 0 must draw the unconditional mixture"
        if scale == 1:
            errors = mixture.moment_errors(x, cond=0)
            assert errors["weights"] < 0.03 and errors["means"] < 0.2 and errors["covs"] < 0.3, errors
        fidelity.append(mixture.class_posterior(x)[:, 0].mean().item())
        spread.append(torch.cov(x.T).trace().item())
    assert fidelity[0] == pytest.approx(mixture.weights[mixture.labels == 0].sum().item(), abs=0.03)
    assert all(a < b for a, b in zip(fidelity, fidelity[1:])) or fidelity[-1] > 0.9999, fidelity
    assert all(a > b for a, b in zip(spread[1:], spread[2:])), f"spread should fall beyond scale 1: {spread}"


def test_guidance_is_the_same_for_every_parametrisation():
    """ε̂, x̂0 and v̂ are affine in each other at fixed x_t, t, so guiding any of them guides the others alike."""
    mixture = ring_mixture()
    cond = torch.full((256,), 2)
    samples = []
    for prediction in ("eps", "x0", "v"):
        d = GaussianDiffusion(linear_beta_schedule(1000), prediction=prediction)
        guided = classifier_free_guidance(mixture.denoiser(d), 3.0, null_cond=mixture.null_cond)
        samples.append(d.ddim_sample(guided, (256, 2), 20, cond=cond, generator=torch.Generator().manual_seed(3)))
    torch.testing.assert_close(samples[1], samples[0], atol=1e-3, rtol=0)
    torch.testing.assert_close(samples[2], samples[0], atol=1e-3, rtol=0)


def test_guidance_is_one_batched_model_call():
    calls = []

    def model(x, t, cond):
        calls.append((x.shape[0], cond))
        return torch.zeros_like(x) if cond is None else (cond == CLASS)[:, None] * torch.ones_like(x)

    guided = classifier_free_guidance(model, 3.0, null_cond=NULL)
    out = guided(torch.zeros(5, 2), torch.zeros(5, dtype=torch.long), torch.full((5,), CLASS))
    assert len(calls) == 1 and calls[0][0] == 10
    torch.testing.assert_close(out, torch.full((5, 2), 3.0))  # 0 + 3 (1 − 0)
    guided(torch.zeros(5, 2), torch.zeros(5, dtype=torch.long))
    assert calls[-1] == (5, None), "without a condition the model runs once, unguided"


def test_drop_condition_replaces_the_condition_at_rate_p():
    g = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 10, (20000,), generator=g)
    dropped = drop_condition(labels, 10, 0.2, generator=g)
    rate = (dropped == 10).float().mean().item()
    assert rate == pytest.approx(0.2, abs=4 * (0.2 * 0.8 / 20000) ** 0.5)
    kept = dropped != 10
    assert torch.equal(dropped[kept], labels[kept])
    assert torch.equal(drop_condition(labels, 10, 0.0, generator=g), labels)
    assert (drop_condition(labels, 10, 1.0, generator=g) == 10).all()


def test_drop_condition_broadcasts_a_null_embedding():
    g = torch.Generator().manual_seed(5)
    embeddings, null = torch.randn(1000, 3, 4, generator=g), torch.zeros(3, 4)
    dropped = drop_condition(embeddings, null, 0.5, generator=g)
    is_null = (dropped == 0).flatten(1).all(1)
    assert 0.4 < is_null.float().mean() < 0.6
    assert torch.equal(dropped[~is_null], embeddings[~is_null])


def test_bad_null_condition_or_rate_is_rejected():
    with pytest.raises(ValueError, match=r"does not broadcast to the condition's shape \(8, 3\)"):
        drop_condition(torch.zeros(8, 3), torch.zeros(4), 0.1)
    with pytest.raises(ValueError, match="probability"):
        drop_condition(torch.zeros(8), 0, 1.5)
    guided = classifier_free_guidance(lambda x, t, cond: x, 2.0, null_cond=torch.zeros(4))
    with pytest.raises(ValueError, match="does not broadcast"):
        guided(torch.zeros(8, 3), torch.zeros(8, dtype=torch.long), torch.zeros(8, 3))
