"""The DDPM chain: q against its closed forms, p_θ and the loss with an oracle model, DDIM identities, bad input."""
import pytest
import torch

from tinyvdm.diffusion import GaussianDiffusion, cosine_beta_schedule, linear_beta_schedule
from tinyvdm.diffusion.toy import Empirical, ring_mixture

PREDICTIONS = ["eps", "x0", "v"]


def oracle(diffusion, x0, prediction):
    """A model that knows the clean x0, so it returns the exact ε, x0 or v for any x_t
    (written from the definitions)."""
    def model(x_t, t, cond=None):
        a = diffusion.alpha_bar[t].float()[:, None].sqrt()
        s = (1 - diffusion.alpha_bar[t].float())[:, None].sqrt()
        eps = (x_t - a * x0) / s
        return {"eps": eps, "x0": x0.expand_as(x_t), "v": a * eps - s * x0}[prediction]
    return model


def test_q_step_chain_matches_q_sample_closed_form():
    """Running q(x_t | x_{t-1}) t+1 times gives the moments of q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)."""
    d = GaussianDiffusion(linear_beta_schedule(1000))
    g = torch.Generator().manual_seed(0)
    m = 20000
    x0 = torch.tensor([-1.0, 0.5, 2.0]).expand(m, 3)
    x = x0
    for t in range(500):
        x = d.q_step(x, torch.full((m,), t), torch.randn(m, 3, generator=g))
        if t in (9, 99, 499):
            a = d.alpha_bar[t].item()
            mean_tol = 4 * ((1 - a) / m) ** 0.5
            torch.testing.assert_close(x.mean(0), a ** 0.5 * x0[0], atol=mean_tol, rtol=0)
            torch.testing.assert_close(x.var(0), torch.full((3,), 1 - a), atol=0, rtol=4 * (2 / m) ** 0.5)
    direct = d.q_sample(x0, torch.full((m,), 499), torch.randn(m, 3, generator=g))
    torch.testing.assert_close(direct.var(0), x.var(0), atol=0, rtol=8 * (2 / m) ** 0.5)


def test_q_posterior_matches_bayes_rule():
    """q(x_{t−1} | x_t, x_0) ∝ q(x_t | x_{t−1}) q(x_{t−1} | x_0): a product of two Gaussians in x_{t−1}."""
    d = GaussianDiffusion(cosine_beta_schedule(1000))
    g = torch.Generator().manual_seed(1)
    t = torch.tensor([1, 10, 250, 700, 999])
    x0, x_t = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    beta, prior_var = d.betas[t][:, None], (1 - d.alpha_bar[t - 1])[:, None]
    precision = 1 / prior_var + (1 - beta) / beta
    mean = (d.alpha_bar[t - 1].sqrt()[:, None] * x0 / prior_var + (1 - beta).sqrt() * x_t / beta) / precision
    got_mean, got_var, got_log_var = d.q_posterior(x0, x_t, t)
    torch.testing.assert_close(got_mean, mean)
    torch.testing.assert_close(got_var, 1 / precision)
    torch.testing.assert_close(got_log_var, (1 / precision).log())


def test_q_posterior_at_the_first_step_is_the_data():
    d = GaussianDiffusion(linear_beta_schedule(1000))
    x0, x_t = torch.randn(4, 2), torch.randn(4, 2)
    mean, var, _ = d.q_posterior(x0, x_t, torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(mean, x0)
    assert (var == 0).all()


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_p_mean_variance_with_an_oracle_is_the_posterior(prediction):
    d = GaussianDiffusion(linear_beta_schedule(1000), prediction=prediction)
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(6, 3, generator=g)
    t = torch.tensor([0, 1, 50, 400, 800, 999])
    x_t = d.q_sample(x0, t, torch.randn(6, 3, generator=g))
    post_mean, post_var, _ = d.q_posterior(x0, x_t, t)
    mean, var, _ = d.p_mean_variance(oracle(d, x0, prediction), x_t, t)
    torch.testing.assert_close(mean, post_mean, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(var, post_var)
    _, large, _ = d.p_mean_variance(oracle(d, x0, prediction), x_t, t, variance="large")
    torch.testing.assert_close(large.flatten(), d.betas[t].float())


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_oracle_model_has_zero_loss(prediction):
    d = GaussianDiffusion(linear_beta_schedule(1000), prediction=prediction)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(64, 2, generator=g)
    assert d.training_loss(oracle(d, x0, prediction), x0, generator=g) < 1e-6


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("gamma", [None, 5.0])
def test_loss_of_an_eps_error_in_each_parametrisation(prediction, gamma):
    """A model off by δ in ε-space is off by −σδ/α in x0 and δ/α in v (for fixed x_t), so its plain loss is
    δ², δ²/SNR or δ²(1 + SNR)/SNR; min-SNR-γ weighting makes all three δ² min(SNR, γ)/SNR."""
    d = GaussianDiffusion(linear_beta_schedule(1000), prediction=prediction, min_snr_gamma=gamma)
    g = torch.Generator().manual_seed(4)
    delta = 0.3
    for step in (5, 100, 600):
        x0 = torch.randn(32, 2, generator=g)
        t = torch.full((32,), step)
        a, s = d.alpha_bar[step].sqrt().item(), (1 - d.alpha_bar[step]).sqrt().item()
        exact = oracle(d, x0, prediction)
        shift = {"eps": delta, "x0": -s * delta / a, "v": delta / a}[prediction]
        loss = d.training_loss(lambda x_t, t, cond=None: exact(x_t, t) + shift, x0, t=t, generator=g).item()
        snr = a ** 2 / s ** 2
        if gamma is None:
            expected = delta ** 2 * {"eps": 1, "x0": 1 / snr, "v": (1 + snr) / snr}[prediction]
        else:
            expected = delta ** 2 * min(snr, gamma) / snr
        assert loss == pytest.approx(expected, rel=1e-3), (step, loss, expected)


def test_ddim_eta1_on_every_step_is_ancestral_sampling():
    """With η = 1 and every step, DDIM's σ² is β̃_t and its mean is μ̃_t: the same chain as DDPM, draw for draw."""
    d = GaussianDiffusion(linear_beta_schedule(50))
    model = ring_mixture().denoiser(d)
    ancestral = d.sample(model, (512, 2), generator=torch.Generator().manual_seed(5))
    ddim = d.ddim_sample(model, (512, 2), steps=50, eta=1.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ddim, ancestral, atol=1e-4, rtol=1e-4)


def test_ddim_inversion_round_trip_returns_the_input():
    d = GaussianDiffusion(linear_beta_schedule(1000))
    mixture = ring_mixture()
    model = mixture.denoiser(d)
    x0, _ = mixture.sample(256, torch.Generator().manual_seed(6))
    plain = []
    for steps in (10, 100):
        back = d.ddim_sample(model, x0.shape, steps, x_T=d.ddim_invert(model, x0, steps))
        plain.append((back - x0).abs().max().item())
    assert plain[1] < plain[0] / 3, f"plain inversion error should shrink like 1/steps, got {plain}"
    x_T = d.ddim_invert(model, x0, 100, fixed_point_iters=5)
    assert 0.9 < x_T.std() < 1.2, "the inverted latent should look like N(0, I) noise"
    back = d.ddim_sample(model, x0.shape, 100, x_T=x_T)
    assert (back - x0).abs().max() < 1e-3


def test_ddim_from_an_intermediate_step_runs_its_own_grid_and_a_callback_can_replace_x():
    """t_start: the model is asked at t_start first and 0 last, `steps` times; a callback's tensor replaces x."""
    d = GaussianDiffusion(linear_beta_schedule(100))
    exact, asked = ring_mixture().denoiser(d), []
    model = lambda x_t, t, cond=None: asked.append(int(t[0])) or exact(x_t, t, cond)
    pin = lambda t, x: torch.cat([torch.full_like(x[:, :1], 0.5), x[:, 1:]], 1)  # put back a known coordinate
    x = d.ddim_sample(model, (8, 2), 5, x_T=torch.randn(8, 2), t_start=40, callback=pin)
    assert asked[0] == 40 and asked[-1] == 0 and len(asked) == 5 and asked == sorted(asked, reverse=True)
    assert (x[:, 0] == 0.5).all()
    with pytest.raises(ValueError, match=r"t_start must be a step of the chain in \[0, 100\)"):
        d.ddim_sample(exact, (8, 2), 5, t_start=100)
    with pytest.raises(ValueError, match="steps must be at most 4"):
        d.ddim_sample(exact, (8, 2), 5, t_start=3)


def test_exact_models_agree_in_every_parametrisation():
    """ε̂, x̂0 and v̂ of the same exact denoiser are one prediction in three coordinates:
    DDIM gives the same samples."""
    mixture = ring_mixture()
    samples = []
    for prediction in PREDICTIONS:
        d = GaussianDiffusion(cosine_beta_schedule(1000), prediction=prediction)
        samples.append(d.ddim_sample(mixture.denoiser(d), (512, 2), 20, generator=torch.Generator().manual_seed(7)))
    torch.testing.assert_close(samples[1], samples[0], atol=1e-3, rtol=0)
    torch.testing.assert_close(samples[2], samples[0], atol=1e-3, rtol=0)


def test_clip_x0_bounds_the_guess_and_leaves_data_in_range_alone():
    """Where ᾱ_t ≈ 0, x̂0 = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t turns a 1 % error of ε̂ into a huge x̂0; clipping bounds it.
    The exact denoiser of data in [−1, 1] returns a convex combination of them, which clipping does not touch."""
    betas = cosine_beta_schedule(1000)
    plain, clipped = GaussianDiffusion(betas), GaussianDiffusion(betas, clip_x0=1.0)
    off = lambda x_t, t, cond=None: 1.01 * x_t  # ε̂ 1 % too large
    x_t, t = torch.randn(64, 2, generator=torch.Generator().manual_seed(8)), torch.full((64,), 999)
    assert plain.denoise(off, x_t, t)[0].abs().max() > 10
    x0, eps = clipped.denoise(off, x_t, t)
    assert x0.abs().max() <= 1
    torch.testing.assert_close(clipped.q_sample(x0, t, eps), x_t, msg="ε̂ must stay consistent with the clipped x̂0")
    assert clipped.ddim_sample(off, (64, 2), 20, generator=torch.Generator().manual_seed(9)).abs().max() <= 1
    frames = torch.rand(32, 1, 4, 4, generator=torch.Generator().manual_seed(10)) * 2 - 1
    exact_plain, exact_clipped = Empirical(frames).denoiser(plain), Empirical(frames).denoiser(clipped)
    a = plain.ddim_sample(exact_plain, (8, 1, 4, 4), 20, generator=torch.Generator().manual_seed(11))
    b = clipped.ddim_sample(exact_clipped, (8, 1, 4, 4), 20, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(a, b)


# --- bad input -----------------------------------------------------------------------------------------------------

def test_bad_construction_is_rejected():
    betas = linear_beta_schedule(100)
    with pytest.raises(ValueError, match="prediction must be one of"):
        GaussianDiffusion(betas, prediction="score")
    with pytest.raises(ValueError, match=r"values in \(0, 1\)"):
        GaussianDiffusion(torch.cat([betas, torch.ones(1, dtype=torch.float64)]))
    with pytest.raises(ValueError, match="min_snr_gamma"):
        GaussianDiffusion(betas, min_snr_gamma=0)
    with pytest.raises(ValueError, match="clip_x0"):
        GaussianDiffusion(betas, clip_x0=-1.0)


def test_steps_out_of_range_or_not_integers_are_rejected():
    d = GaussianDiffusion(linear_beta_schedule(100))
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"steps t in \[0, 100\)"):
        d.q_sample(x, torch.tensor([0, 100]), x)
    with pytest.raises(ValueError, match="integer steps"):
        d.q_sample(x, torch.tensor([0.5, 0.5]), x)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        d.q_sample(x, torch.tensor([1, 2, 3]), x)


def test_model_output_of_the_wrong_shape_is_rejected():
    d = GaussianDiffusion(linear_beta_schedule(100))
    with pytest.raises(ValueError, match=r"shaped like x_t \(4, 2\)"):
        d.training_loss(lambda x, t, cond=None: x[:, :1], torch.randn(4, 2))
    with pytest.raises(ValueError, match="shaped like x_t"):
        d.sample(lambda x, t, cond=None: x.sum(), (4, 2))


@pytest.mark.parametrize("steps", [0, -1, 101])
def test_bad_step_counts_are_rejected(steps):
    d = GaussianDiffusion(linear_beta_schedule(100))
    model = ring_mixture().denoiser(d)
    with pytest.raises(ValueError, match="steps must be"):
        d.ddim_sample(model, (4, 2), steps)
    with pytest.raises(ValueError, match="steps must be"):
        d.ddim_invert(model, torch.zeros(4, 2), steps)


def test_unknown_variance_is_rejected():
    d = GaussianDiffusion(linear_beta_schedule(100))
    with pytest.raises(ValueError, match="variance must be one of"):
        d.p_mean_variance(lambda x, t, cond=None: x, torch.zeros(2, 2), torch.tensor([3, 3]), variance="medium")
