"""Frame conditioning (masked MCVD model) and longer videos (replacement vs reconstruction guidance),
against the math."""
import pytest
import torch
from einops import einsum

from tinyvdm.data import DIRECTIONS, MovingMNIST
from tinyvdm.diffusion import GaussianDiffusion, cosine_beta_schedule
from tinyvdm.diffusion.toy import GaussianMixture
from tinyvdm.models import UNet3D
from tinyvdm.metrics.evaluator import fit_bouncing_motion
from tinyvdm.models.text import Tokenizer
from tinyvdm.pipelines.extend import (boundary_scores, direction_prompts, extend, motion_surprise, overlap_direction,
                                      reconstruction_guidance, sample_window, window_starts)
from tinyvdm.pipelines.frames import (EVERY, Interpolation, complete, conditioned, frames_loss, interpolate, predict,
                                      random_masks)
from tinyvdm.train import get_preset, load_checkpoint, train


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return UNet3D(dim=8, dim_mults=(1, 2), heads=2, head_dim=8, ctx_channels=2).eval()


@pytest.fixture(scope="module")
def diffusion():
    return GaussianDiffusion(cosine_beta_schedule(50), prediction="v", clip_x0=1.0)


def test_known_frames_are_kept_bit_exactly_and_the_others_are_sampled(net, diffusion):
    video = torch.rand(2, 1, 3, 8, 8) * 2 - 1
    g = lambda: torch.Generator().manual_seed(0)
    up = interpolate(diffusion, net, video, factor=2, steps=3, generator=g())
    assert up.shape == (2, 1, 6, 8, 8) and torch.equal(up[:, :, ::2], video)
    assert not torch.equal(up[:, :, 1::2], torch.zeros_like(up[:, :, 1::2]))
    ahead = predict(diffusion, net, video[:, :, :1], frames=5, steps=3, generator=g())
    assert ahead.shape == (2, 1, 5, 8, 8) and torch.equal(ahead[:, :, :1], video[:, :, :1])
    mask = torch.tensor([[True, False, True], [False, False, True]])  # one mask per video
    both = complete(diffusion, net, video, mask, steps=3, generator=g())
    assert torch.equal(both[0, :, [0, 2]], video[0, :, [0, 2]]) and torch.equal(both[1, :, 2], video[1, :, 2])
    assert torch.equal(both, complete(diffusion, net, video, mask, steps=3, generator=g()))  # seeded


def test_the_net_sees_the_known_frames_through_ctx_only(net):
    """f_θ((1 − m) ⊙ x_t, t, [m ⊙ x^a, m]): the sampler's state at the known frames and x^a's unknown frames never
    reach the net; x^a's known frames do."""
    known, x_t, t = torch.randn(1, 1, 4, 8, 8), torch.randn(1, 1, 4, 8, 8), torch.tensor([7])
    m = torch.tensor([True, False, True, False]).view(1, 1, 4, 1, 1)
    out = conditioned(net, known, m)(x_t, t)
    other = torch.where(m, torch.randn_like(x_t), x_t)  # changed at the known frames
    assert torch.equal(out, conditioned(net, torch.where(m, known, 5.0), m)(other, t))
    assert not torch.allclose(out, conditioned(net, known + m, m)(x_t, t))


def test_the_loss_is_the_mean_squared_error_on_the_unknown_frames_only():
    """With x_0-prediction the target is x_0: an output wrong by 1 on every unknown entry costs exactly 1 whatever
    the mask, and anything at the known frames costs nothing (and gets no gradient)."""
    diffusion = GaussianDiffusion(cosine_beta_schedule(50), prediction="x0")
    x0 = torch.rand(3, 1, 5, 4, 4)
    mask = torch.tensor([[False] * 5, [True, True, False, False, False], [True, False, True, False, True]])
    m = mask.view(3, 1, 5, 1, 1)
    junk = torch.zeros_like(x0, requires_grad=True)
    model = lambda x_t, t, cond=None, ctx=None: torch.where(m, 1e3 + junk, x0 + 1 + 0 * junk)
    loss = frames_loss(diffusion, model, x0, mask, torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.item() == pytest.approx(1.0, abs=1e-6)
    assert (junk.grad == 0).all()
    exact = lambda x_t, t, cond=None, ctx=None: torch.where(m, -x0, x0)
    assert frames_loss(diffusion, exact, x0, mask, torch.Generator().manual_seed(0)).item() == 0


def test_random_masks_have_the_documented_kinds():
    T, n = 16, 3000
    masks = random_masks(n, T, torch.Generator().manual_seed(0), probs=(0.2, 0.3, 0.5))
    assert torch.equal(masks, random_masks(n, T, torch.Generator().manual_seed(0)))
    t = torch.arange(T)
    none = ~masks.any(1)
    count = masks.sum(1)
    first = masks.any(1) & (masks == (t < count[:, None])).all(1)
    every = torch.zeros(n, dtype=torch.bool)
    for k in EVERY:
        every |= (masks == (t % k == 0)).all(1)
    assert (none | first | every).all()
    assert abs(none.float().mean() - 0.2) < 0.03 and abs(every.float().mean() - 0.5) < 0.03
    assert set(count[first & ~every].tolist()) == set(range(1, T))  # S = 1 … T − 1, each seen
    assert all((masks == (t % k == 0)).all(1).any() for k in EVERY)


def test_bad_inputs_are_named(net, diffusion):
    video = torch.zeros(1, 1, 8, 8, 8)
    with pytest.raises(ValueError, match=r"T = 8 frames .* \(8,\) or \(1, 8\), got \(6,\)"):
        complete(diffusion, net, video, torch.ones(6, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool mask"):
        complete(diffusion, net, video, torch.ones(8))
    with pytest.raises(ValueError, match=r"1 channels .* got \(1, 3, 8, 8, 8\)"):
        complete(diffusion, net, torch.zeros(1, 3, 8, 8, 8), torch.ones(8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"video batch \(B, C, T, H, W\), got \(8, 8, 8\)"):
        interpolate(diffusion, net, torch.zeros(8, 8, 8))
    with pytest.raises(ValueError, match="ctx_channels=2 .* got ctx_channels=0"):
        complete(diffusion, UNet3D(dim=8, dim_mults=(1,), heads=2, head_dim=8), video, torch.ones(8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"8 context frames \(context \(1, 1, 8, 8, 8\)\) for frames=8"):
        predict(diffusion, net, video, frames=8)
    with pytest.raises(ValueError, match="factor must be an integer >= 2, got 1"):
        interpolate(diffusion, net, video, factor=1)
    with pytest.raises(ValueError, match=r"1 <= overlap < 8 .* got 8"):
        extend(diffusion, net, video, 16, overlap=8)
    with pytest.raises(ValueError, match="method must be one of"):
        sample_window(diffusion, net, video, torch.ones(8, dtype=torch.bool), method="inpaint")


def test_replacement_puts_the_known_frames_at_q_of_z_t_given_x_a():
    """What the model sees at the known frame at step t is √ᾱ_t x^a + √(1 − ᾱ_t) ε: mean √ᾱ_t x^a, std √(1 − ᾱ_t)."""
    diffusion = GaussianDiffusion(cosine_beta_schedule(100))
    seen = {}

    def spy(x_t, t, cond=None):
        seen[int(t[0])] = x_t[:, 0, 0, 0, 0].clone()
        return 0.5 * x_t

    n, x_a = 4000, 0.6
    known = torch.full((n, 1, 2, 1, 1), x_a)
    out = sample_window(diffusion, spy, known, torch.tensor([True, False]), "replacement", steps=5,
                        generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :, 0], known[:, :, 0])
    assert len(seen) == 5
    for t, z in seen.items():
        a = diffusion.alpha_bar[t].item()
        assert abs(z.mean().item() - a ** 0.5 * x_a) < 4 * (1 - a) ** 0.5 / n ** 0.5, t
        assert z.std().item() == pytest.approx((1 - a) ** 0.5, rel=0.05), t


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_the_guidance_term_is_the_closed_form_gradient_for_a_linear_denoiser(prediction):
    """A model linear across frames, x̂(z) = A z, has ∇_{z^b} ‖x^a − x̂^a‖² = −2 [Aᵀ (m ⊙ (x^a − A z))]^b, so
    x̃^b = x̂^b + w α_t [Aᵀ (m ⊙ (x^a − A z))]^b; the guided model returns it in the model's own parametrisation."""
    diffusion = GaussianDiffusion(cosine_beta_schedule(50), prediction=prediction)
    torch.manual_seed(0)
    T = 4
    B_ = torch.randn(T, T) / 2  # the model's output is B z along the frame axis

    def model(z, t, cond=None):
        return einsum(B_, z, "s t, b c t h w -> b c s h w")

    known, z = torch.randn(2, 1, T, 3, 3), torch.randn(2, 1, T, 3, 3)
    m = torch.tensor([True, True, False, False]).view(1, 1, T, 1, 1)
    w = 3.0
    for step in (5, 30):
        t = torch.full((2,), step)
        alpha, sigma = diffusion.sqrt_alpha_bar[step].item(), diffusion.sqrt_one_minus_alpha_bar[step].item()
        A = B_ if prediction == "x0" else alpha * torch.eye(T) - sigma * B_  # x̂ = α z − σ v̂ for v
        x_hat = einsum(A, z, "s t, b c t h w -> b c s h w")
        residual = torch.where(m, known - x_hat, 0)
        expected = torch.where(m, x_hat, x_hat + w * alpha * einsum(A, residual, "s t, b c s h w -> b c t h w"))
        guided = reconstruction_guidance(diffusion, model, known, m, w)(z, t)
        assert torch.allclose(diffusion.predict_x0(guided, z, t), expected, atol=1e-5)
        assert not torch.allclose(expected, x_hat, atol=1e-3)


def test_with_classifier_free_guidance_the_estimate_is_the_guided_models_and_the_gradient_the_conditional_ones():
    """x̂_c = c B z (x_0-prediction), ∅ = 0: the guided x̂ = s c B z, corrected by w α [Aᵀ (m ⊙ (x^a − A z))]^b with
    A = c B, the conditional model's Jacobian."""
    diffusion = GaussianDiffusion(cosine_beta_schedule(50), prediction="x0")
    torch.manual_seed(1)
    T, s, w, step = 4, 3.0, 2.0, 20
    B_ = torch.randn(T, T) / 2
    model = lambda z, t, cond=None: cond.view(-1, 1, 1, 1, 1) * einsum(B_, z, "s t, b c t h w -> b c s h w")
    known, z, c = torch.randn(2, 1, T, 3, 3), torch.randn(2, 1, T, 3, 3), torch.tensor([0.5, 1.5])
    m = torch.tensor([True, False, True, False]).view(1, 1, T, 1, 1)
    alpha = diffusion.sqrt_alpha_bar[step].item()
    A = c.view(-1, 1, 1) * B_  # (2, T, T): one per video
    x_c = einsum(A, z, "b s t, b c t h w -> b c s h w")
    correction = w * alpha * einsum(A, torch.where(m, known - x_c, 0), "b s t, b c s h w -> b c t h w")
    expected = torch.where(m, s * x_c, s * x_c + correction)
    guided = reconstruction_guidance(diffusion, model, known, m, w, guidance=s, null_cond=torch.tensor(0.0))
    assert torch.allclose(guided(z, torch.full((2,), step), c), expected, atol=1e-5)
    with pytest.raises(ValueError, match="guidance needs null_cond"):
        sample_window(diffusion, model, known, m.flatten(), steps=2, cond=c, guidance=s)


def test_on_a_gaussian_the_guided_estimate_moves_toward_the_conditional_mean():
    """Two frames x = (x^a, x^b) ~ N(0, [[1, ρ], [ρ, 1]]), x̂ = E[x | z_t] exact. The truth is
    E[x^b | z_t, x^a] = μ + α v / (α² v + σ²) (z^b − α μ), μ = ρ x^a, v = 1 − ρ². Guidance moves x̂^b by
    w α J_ba (x^a − x̂^a) and the truth by (σ²/α) J_ba Cov(x^a | z_t)⁻¹ (x^a − x̂^a), the same direction, and
    Cov(x^a | z_t) ≤ σ²/α² makes w = 1 fall short of it: strictly closer, never past."""
    rho = 0.9
    data = GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, rho], [rho, 1.0]]])
    diffusion = GaussianDiffusion(cosine_beta_schedule(100), prediction="eps")
    exact = data.denoiser(diffusion)
    model = lambda z, t, cond=None: exact(z.flatten(1), t).view_as(z)
    x, _ = data.sample(500, torch.Generator().manual_seed(0))
    x = x.view(-1, 1, 2, 1, 1)
    m = torch.tensor([True, False]).view(1, 1, 2, 1, 1)
    for step in (20, 50, 80):
        t = torch.full((len(x),), step)
        alpha, sigma = diffusion.sqrt_alpha_bar[step].item(), diffusion.sqrt_one_minus_alpha_bar[step].item()
        z = alpha * x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(step))
        x_a, z_b = x[:, 0, 0, 0, 0], z[:, 0, 1, 0, 0]
        mu, v = rho * x_a, 1 - rho ** 2
        truth = mu + alpha * v / (alpha ** 2 * v + sigma ** 2) * (z_b - alpha * mu)
        plain = diffusion.predict_x0(model(z, t), z, t)[:, 0, 1, 0, 0]
        guided = diffusion.predict_x0(reconstruction_guidance(diffusion, model, x, m, 1.0)(z, t), z, t)[:, 0, 1, 0, 0]
        assert ((guided - truth).abs() < (plain - truth).abs()).all(), step
        assert ((guided - plain) * (truth - plain) > 0).all(), step


def test_resampling_draws_the_unknown_frame_from_its_conditional():
    """Two frames x ~ N(0, [[1, ρ], [ρ, 1]]), x^a known, the exact denoiser: x^b | x^a ~ N(ρ x^a, 1 − ρ²). Replacement
    hears x^a only through the noisy z^a and regresses x^b on x^a with a slope far below ρ; taking every step U times
    (RePaint) brings the slope and the residual variance to the conditional's."""
    rho = 0.9
    data = GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, rho], [rho, 1.0]]])
    diffusion = GaussianDiffusion(cosine_beta_schedule(100), prediction="eps")
    exact = data.denoiser(diffusion)
    model = lambda z, t, cond=None: exact(z.flatten(1), t).view_as(z)
    x_a = torch.randn(4000, generator=torch.Generator().manual_seed(0))
    known = torch.stack([x_a, torch.zeros_like(x_a)], 1).view(-1, 1, 2, 1, 1)
    slopes, residuals = [], []
    for u in (1, 2, 5, 10):
        x_b = sample_window(diffusion, model, known, torch.tensor([True, False]), "replacement", steps=20, eta=1.0,
                            generator=torch.Generator().manual_seed(1), resample=u)[:, 0, 1, 0, 0]
        slopes.append(((x_b * x_a).mean() / (x_a * x_a).mean()).item())
        residuals.append((x_b - rho * x_a).var().item())
    assert slopes == sorted(slopes) and slopes[0] < 0.7 and abs(slopes[-1] - rho) < 0.06, slopes
    assert residuals[0] > 2 * (1 - rho ** 2) and abs(residuals[-1] - (1 - rho ** 2)) < 0.04, residuals
    with pytest.raises(ValueError, match="resample must be an int >= 1"):
        diffusion.ddim_sample(model, known.shape, 5, resample=0)


def test_motion_surprise_ranks_the_window_the_video_model_finds_unlikely_and_selection_follows_the_conditional():
    """Two frames, the exact denoisers of the video model N(0, [[1, ρ], [ρ, 1]]) and of its frames alone N(0, I)
    (image mode). A window that breaks the correlation, (a, −a), lies along the video model's small-variance axis and
    is denoised worse by it than (a, a), the image model sees no difference: the ratio ranks it higher. Keeping the
    lowest of K = 4 replacement draws brings the regression of x^b on x^a from a slope of 0.60 to ρ's."""
    rho = 0.9
    diffusion = GaussianDiffusion(cosine_beta_schedule(100), prediction="eps")
    video = GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, rho], [rho, 1.0]]]).denoiser(diffusion)
    image = GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 1.0]]]).denoiser(diffusion)
    net = lambda z, t, cond=None, image_mode=False: (image if image_mode else video)(z.flatten(1), t).view_as(z)
    select = motion_surprise(diffusion, net, draws=8, generator=torch.Generator().manual_seed(0))
    a = torch.randn(2000, generator=torch.Generator().manual_seed(1)).abs() + 0.5
    follows, breaks = (torch.stack([a, s * a], 1).view(-1, 1, 2, 1, 1) for s in (1, -1))
    assert (select(breaks) > select(follows)).float().mean() > 0.95
    x_a = torch.randn(2000, generator=torch.Generator().manual_seed(2))
    known = torch.stack([x_a, torch.zeros_like(x_a)], 1).view(-1, 1, 2, 1, 1)
    slopes = []
    for k in (1, 4):
        x = extend(diffusion, net, known[:, :, :1].expand(-1, -1, 2, -1, -1), 3, overlap=1, method="replacement",
                   steps=20, eta=1.0, generator=torch.Generator().manual_seed(3), candidates=k, select=select)
        slopes.append(((x[:, 0, 2, 0, 0] * x_a).mean() / (x_a * x_a).mean()).item())
    assert slopes[0] < 0.7 and abs(slopes[1] - rho) < 0.1, slopes
    with pytest.raises(ValueError, match="needs select"):
        extend(diffusion, net, known, 3, overlap=1, candidates=2)


def test_guidance_weight_zero_is_the_replacement_method():
    diffusion = GaussianDiffusion(cosine_beta_schedule(50), prediction="v")
    model = lambda z, t, cond=None: 0.3 * z + 0.1 * z.roll(1, 2)
    video = torch.rand(2, 1, 4, 2, 2)
    run = lambda method, weight: extend(diffusion, model, video, 10, overlap=2, method=method, weight=weight,
                                        steps=4, generator=torch.Generator().manual_seed(0))
    plain, zero, guided = run("replacement", 0.0), run("guidance", 0.0), run("guidance", 4.0)
    assert plain.shape == (2, 1, 10, 2, 2) and torch.equal(plain[:, :, :4], video)
    assert torch.allclose(plain, zero, atol=1e-5) and not torch.allclose(plain, guided, atol=1e-3)
    assert torch.equal(guided[:, :, :4], video)
    assert window_starts(10, 4, 2) == [0, 2, 4, 6] and window_starts(4, 4, 2) == [0]


def test_boundary_scores_see_a_reversal_at_a_boundary_and_nothing_in_a_real_video():
    _, _, labels = MovingMNIST(8, split="test", frames=32).batch(range(8))
    p = labels["positions"][:, :, 0]  # (B, T, 2) true centres
    real = boundary_scores(p, window=8, overlap=4)
    assert real["consistent"].shape == (8, 6) and real["consistent"].all()
    broken = p.clone()
    broken[:, 12:] = 2 * p[:, 11:12] - p[:, 12:]  # from frame 12, window 2's first new frame: mirrored about frame 11
    scores = boundary_scores(broken, window=8, overlap=4)
    assert not scores["consistent"][:, 1].any() and scores["consistent"][:, 0].all()
    assert (scores["turn"][:, 1] > real["turn"][:, 1] + 1).all()
    assert real["direction_kept"].all() and scores["direction_kept"][:, 0].all()
    assert not scores["direction_kept"][:, 1].any()


def test_direction_kept_forgives_a_change_of_speed_and_not_a_turn_aside():
    """16 frames in two windows of 8 (boundaries at frames 8 and 12), the digit moving right at 1 px a frame: from
    frame 12 on it speeds up to 3 px a frame (one motion no longer fits, the direction is kept), or stops and moves
    down instead (neither)."""
    t = torch.arange(16.0)
    y, x = torch.full((16,), 12.0), 8 + t
    fast, down = x.clone(), y.clone()
    fast[12:] = x[11] + 3 * (t[12:] - 11)
    down[12:] = y[11] + (t[12:] - 11)
    stopped = torch.where(t < 12, x, x[11])
    paths = torch.stack([torch.stack(p, -1) for p in ((y, x), (y, fast), (down, stopped))])  # (3, 16, 2)
    scores = boundary_scores(paths, window=8, overlap=4)
    assert scores["consistent"].tolist() == [[True, True], [True, False], [True, False]]
    assert scores["direction_kept"].tolist() == [[True, True], [True, True], [True, False]]


@pytest.mark.parametrize("overlap", [3, 4])
def test_the_overlap_reads_the_direction_the_data_would_caption_the_window_with(overlap):
    """Real videos of 32 frames cut into 8-frame windows every 4: from a window's first `overlap` frames the reader
    gives the direction of the window's clip as the data labels it (its visible initial direction, which is the
    caption's at frame 0), also for the windows after a bounce; the overlap played backwards reads as the reverse."""
    videos, _, labels = MovingMNIST(64, split="test", frames=32).batch(range(64))
    p = labels["positions"][:, :, 0]
    assert torch.equal(overlap_direction(videos[:, :, :overlap]), labels["direction"][:, 0])
    bounced = 0
    for s in window_starts(32, 8, 4):
        truth = fit_bouncing_motion(p[:, s:s + 8])["direction"]  # the clip's label, as the evaluator is trained on
        assert torch.equal(overlap_direction(videos[:, :, s:s + overlap]), truth), s
        bounced += (truth != labels["direction"][:, 0]).sum().item()
        steps = p[:, s + 1:s + overlap] - p[:, s:s + overlap - 1]
        free = (steps == steps[:, :1]).all(2).all(1)  # no wall within the overlap: the reverse is a reversal
        backwards = overlap_direction(videos[:, :, s:s + overlap].flip(2))
        assert free.any() and torch.equal(backwards[free], (truth[free] + 4) % len(DIRECTIONS)), s
    assert bounced > 64  # many windows start after a bounce


def test_direction_prompts_caption_each_window_from_its_overlap():
    """The caption is the data's template with the digit and the direction read; with no motion read it stays, and
    `extend` asks for one cond per later window from that window's known frames."""
    videos, _, labels = MovingMNIST(4, split="test", frames=12).batch(range(4))
    digits, directions = labels["digits"][:, 0], labels["direction"][:, 0]
    tokenizer = Tokenizer(max_len=16)
    prompt_fn = direction_prompts(tokenizer, digits)
    expected = [f"the digit {d} moves {DIRECTIONS[r]}" for d, r in zip(digits.tolist(), directions.tolist())]
    assert torch.equal(prompt_fn(videos[:, :, :4], None), tokenizer(expected))
    previous = tokenizer(["digit 0 goes left"] * 4)
    assert torch.equal(prompt_fn(videos[:, :, :1].expand(-1, -1, 4, -1, -1), previous), previous)  # a still digit
    with pytest.raises(ValueError, match="one digit per video, 2, got 4"):
        prompt_fn(videos[:2, :, :4], None)
    seen = []

    def spy(frames, cond):
        seen.append((frames.clone(), cond))
        return len(seen)

    diffusion = GaussianDiffusion(cosine_beta_schedule(50), prediction="v")
    model = lambda z, t, cond=None: 0.3 * z
    out = extend(diffusion, model, videos[:, :, :8], 16, overlap=4, steps=2, cond=0, prompt_fn=spy)
    assert [c for _, c in seen] == [0, 1] and torch.equal(seen[0][0], videos[:, :, 4:8])
    assert torch.equal(seen[1][0], out[:, :, 8:12])


def test_the_frames_task_trains_and_generates_through_the_trainer(tmp_path):
    config = get_preset("frames-tiny")
    config.out_dir, config.progress, config.steps, config.warmup = str(tmp_path), False, 2, 1
    model, _, task = load_checkpoint(train(config).checkpoint)
    videos = task.sample(model, 2, steps=2, generator=torch.Generator().manual_seed(0), progress=False)
    assert videos.shape == (2, *task.video_shape) == (2, 1, 6, 16, 16)
    # the same checkpoint as a cascade's TSR stage: 3 frames in, 6 out, the given ones kept exactly
    from tinyvdm.pipelines.cascade import load_stage
    stage = load_stage(tmp_path / "ckpt.pt", "tsr")
    assert isinstance(stage, Interpolation) and (stage.in_shape, stage.out_shape) == ((1, 3, 16, 16), (1, 6, 16, 16))
    low = videos[:, :, ::2].clamp(-1, 1)
    out = stage(low, steps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 6, 16, 16) and torch.equal(out[:, :, ::2], low)
    with pytest.raises(ValueError, match=r"stage 'tsr' takes videos \(B, C, T, H, W\) = \(B, 1, 3, 16, 16\)"):
        stage(videos)
