"""Video editing: inversion against the exact denoiser of a Gaussian mixture, SDEdit's limits, attention injection
and cross-frame attention as identities on a tiny text-to-video net, and bad input."""
import pytest
import torch

from tinyvdm.data import MovingMNIST
from tinyvdm.diffusion import GaussianDiffusion, classifier_free_guidance, cosine_beta_schedule, linear_beta_schedule
from tinyvdm.diffusion.toy import ring_mixture
from tinyvdm.pipelines.editing import (VideoEditor, edit_targets, flicker, image_mode_denoiser, inject_attention,
                                       reconstruct, sdedit, warped_noise)
from tinyvdm.pipelines.t2v import TextToVideo
from tinyvdm.train import get_preset, load_checkpoint, train

SOURCE, TARGET = "the digit 3 moves left", "the digit 8 moves left"


@pytest.fixture(scope="module")
def editor(tmp_path_factory):
    config = get_preset("t2v-tiny")
    config.out_dir, config.progress, config.steps = str(tmp_path_factory.mktemp("t2v")), False, 10
    net, _, task = load_checkpoint(train(config).checkpoint)
    return VideoEditor(TextToVideo(net, task.diffusion, task.video_shape), guidance=2.0)


@pytest.fixture(scope="module")
def videos(editor):
    return torch.rand(2, *editor.t2v.video_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1


# --- inversion on the analytic test bed ----------------------------------------------------------------------------

def mixture_chain():
    d = GaussianDiffusion(linear_beta_schedule(1000))
    mixture = ring_mixture()
    x0, _ = mixture.sample(256, torch.Generator().manual_seed(1))
    return d, mixture.denoiser(d), x0.double()


def test_inversion_then_regeneration_is_exact_with_the_exact_denoiser():
    d, model, x0 = mixture_chain()
    rebuilt = reconstruct(d, model, x0, steps=50, fixed_point_iters=20)
    assert (rebuilt - x0).abs().max() < 1e-8


def test_reconstruction_error_falls_monotonically_with_steps():
    d, model, x0 = mixture_chain()
    errors = [(reconstruct(d, model, x0, steps=s) - x0).abs().mean().item() for s in (5, 10, 20, 50, 100)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


# --- SDEdit --------------------------------------------------------------------------------------------------------

def test_sdedit_with_a_small_strength_returns_nearly_the_source(editor, videos):
    """At strength 0.01 the source is noised to step 0 (std √(1 − ᾱ_0) = 0.025) and comes back nearly unchanged;
    the further it is noised, the further the edit moves."""
    errors = [(editor.sdedit(videos, TARGET, s) - videos).abs().mean().item() for s in (0.01, 0.1, 0.3, 1.0)]
    assert errors[0] < 0.05 and all(a < b for a, b in zip(errors, errors[1:])), errors


def test_sdedit_starts_at_strength_times_the_chain_and_takes_that_share_of_the_steps():
    d = GaussianDiffusion(cosine_beta_schedule(100))
    asked = []
    model = lambda x_t, t, cond=None: asked.append(int(t[0])) or torch.zeros_like(x_t)
    sdedit(d, model, torch.zeros(2, 3), strength=0.5, steps=20)
    assert asked[0] == 49 and asked[-1] == 0 and len(asked) == 10


def test_with_warped_noise_a_translation_equivariant_per_frame_edit_moves_with_the_source():
    """Frames that are shifts of frame 0 (a blob moving 2 px a frame), a per-frame denoiser that commutes with shifts
    (a circular convolution): with ε_i = S_{δ_i} ε_0 every edited frame is the edited frame 0 shifted by δ_i,
    exactly; with independent noise per frame it is not (the flicker Text2Video-Zero's shared noise removes)."""
    d = GaussianDiffusion(cosine_beta_schedule(100))
    frame = -torch.ones(1, 1, 16, 16)
    frame[..., 5:9, 4:7] = 1.0
    moves = [(0, 2 * i) for i in range(4)]
    video = torch.stack([frame.roll(m, (-2, -1)) for m in moves], 2)  # (1, 1, 4, 16, 16)
    kernel = torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(0)) / 9
    conv = lambda x: torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="circular"), kernel)
    model = lambda x_t, t, cond=None: conv(x_t.transpose(1, 2).flatten(0, 1)).unflatten(0, (1, -1)).transpose(1, 2)
    eps = warped_noise(video, torch.Generator().manual_seed(1))
    assert all(torch.equal(eps[:, :, i], eps[:, :, 0].roll(m, (-2, -1))) for i, m in enumerate(moves))
    for noise, moves_with_it in ((eps, True), (torch.randn(video.shape, generator=torch.Generator()), False)):
        out = sdedit(d, model, video, 0.6, steps=10, noise=noise)
        shifted = torch.stack([out[:, :, 0].roll(m, (-2, -1)) for m in moves], 2)
        assert torch.allclose(out, shifted, atol=1e-5) == moves_with_it
    with pytest.raises(ValueError, match="noise of the source's shape"):
        sdedit(d, model, video, 0.6, noise=eps[:, :, :2])


def test_masked_sdedit_keeps_the_outside_of_the_mask(editor, videos):
    mask = torch.zeros(1, 1, 1, 1, videos.shape[-1])
    mask[..., : videos.shape[-1] // 2] = 1  # edit the left half of every frame
    edited = editor.sdedit(videos, TARGET, strength=0.8, mask=mask)
    assert torch.equal(edited[..., videos.shape[-1] // 2:], videos[..., videos.shape[-1] // 2:])
    assert (edited - videos)[..., : videos.shape[-1] // 2].abs().mean() > 0.1


# --- inversion with attention injection ----------------------------------------------------------------------------

def test_injection_with_tau_past_every_step_is_plain_regeneration_from_the_inverted_noise(editor, videos):
    """Equal up to float32 rounding, which x̂0 = (x_t − √(1 − ᾱ) ε̂) / √ᾱ multiplies by 1/√ᾱ at the top step."""
    t2v, steps = editor.t2v, 4
    src, tgt = t2v.net.tokenizer([SOURCE] * 2), t2v.net.tokenizer([TARGET] * 2)
    edited, rebuilt = editor.inject(videos, SOURCE, TARGET, tau=t2v.diffusion.num_steps - 1, steps=steps)
    with torch.inference_mode():
        x_T = t2v.diffusion.ddim_invert(t2v.net, videos, steps, src)
        guided = classifier_free_guidance(t2v.net, editor.guidance, t2v.net.null_ids)
        plain = t2v.diffusion.ddim_sample(guided, videos.shape, steps, cond=tgt, x_T=x_T).clamp(-1, 1)
    assert (edited - plain).abs().mean() < 1e-5
    assert (rebuilt - reconstruct(t2v.diffusion, t2v.net, videos, src, steps).clamp(-1, 1)).abs().mean() < 1e-5
    injected, _ = editor.inject(videos, SOURCE, TARGET, tau=-1, steps=steps)
    assert (injected - edited).abs().mean() > 1e-3, "injecting at every step should change the edit"


def test_injecting_a_branch_its_own_attention_changes_nothing(editor, videos):
    t2v = editor.t2v
    ids = t2v.net.tokenizer([SOURCE] * 2)
    edited, rebuilt = inject_attention(t2v.diffusion, t2v.net, videos, ids, ids, tau=-1, steps=3)
    torch.testing.assert_close(edited, rebuilt)


# --- per-frame editing with cross-frame attention ------------------------------------------------------------------

def test_per_frame_denoiser_sees_one_frame_and_cross_frame_sees_frame_zero(editor, videos):
    net, t = editor.t2v.net, torch.tensor([50, 50])
    ids = net.tokenizer([SOURCE] * 2)
    changed = videos.clone()
    changed[:, :, 0] = -changed[:, :, 0]
    for cross_frame in (False, True):
        model = image_mode_denoiser(net, cross_frame)
        moved = (model(changed, t, ids) - model(videos, t, ids)).abs().amax((0, 1, 3, 4))  # per frame
        assert moved[0] > 0 and (moved[1:].min() > 0) == cross_frame, (cross_frame, moved)


def test_cross_frame_attention_on_identical_frames_is_per_frame_attention(editor, videos):
    net, t = editor.t2v.net, torch.tensor([50, 50])
    ids = net.tokenizer([SOURCE] * 2)
    still = videos[:, :, :1].expand_as(videos).contiguous()  # every frame = frame 0
    torch.testing.assert_close(image_mode_denoiser(net, True)(still, t, ids), image_mode_denoiser(net)(still, t, ids))


def test_every_mode_edits_every_video(editor, videos):
    for mode in ("video", "per_frame", "cross_frame"):
        for warp in (False, True):
            edited = editor.sdedit(videos, [TARGET, SOURCE], strength=0.5, steps=4, mode=mode, warp_noise=warp)
            assert edited.shape == videos.shape and edited.abs().max() <= 1


# --- measuring an edit against Moving MNIST's truth ---------------------------------------------------------------

@pytest.fixture(scope="module")
def moving():
    data = MovingMNIST(64, split="test", seed=0)
    return data, data.sample_labels(range(64))


def test_digit_edit_changes_the_digit_and_keeps_the_motion(moving):
    data, labels = moving
    target = edit_targets(labels, "digit", data.config)
    assert (target["digit"] != labels["digits"][:, 0]).all()
    assert torch.equal(target["direction"], labels["direction"][:, 0])
    assert torch.equal(target["positions"], labels["positions"][:, :, 0])


def test_direction_edit_starts_where_the_source_starts_and_steps_the_other_way(moving):
    data, labels = moving
    c, source = data.config, labels["positions"][:, :, 0]
    target = edit_targets(labels, "direction", data.config)
    lo, hi = (c.digit_size - 1) / 2, (c.digit_size - 1) / 2 + c.size - c.digit_size
    clear = ((source[:, 0] - lo >= c.speed) & (hi - source[:, 0] >= c.speed)).all(1)  # no wall within one step
    assert torch.equal(target["positions"][:, 0], source[:, 0])
    assert clear.sum() > 10
    step = lambda p: p[:, 1] - p[:, 0]
    assert torch.equal(step(target["positions"])[clear], -step(source)[clear])
    assert torch.equal(target["direction"][clear], (labels["direction"][clear, 0] + 4) % 8)
    assert target["positions"].min() >= lo and target["positions"].max() <= hi
    both = edit_targets(labels, "both", data.config)
    assert torch.equal(both["positions"], target["positions"])
    assert torch.equal(both["digit"], edit_targets(labels, "digit", data.config)["digit"])


def test_flicker_is_zero_on_real_videos_at_their_true_positions_and_grows_with_shuffled_frames(moving):
    data, labels = moving
    videos = data.render(labels["source"], labels["positions"])
    positions = labels["positions"][:, :, 0]
    assert flicker(videos, positions, data.config.digit_size).max() == 0
    shuffled = videos[:, :, torch.tensor([0, 5, 2, 7, 1, 4, 6, 3])]
    assert flicker(shuffled, positions, data.config.digit_size).mean() > 0.1


# --- bad input -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strength", [0, -0.2, 1.5])
def test_strength_outside_zero_one_is_rejected(editor, videos, strength):
    with pytest.raises(ValueError, match=r"strength must be in \(0, 1\]"):
        editor.sdedit(videos, TARGET, strength)


@pytest.mark.parametrize("tau", [-2, 100, 0.5])
def test_tau_outside_the_schedule_is_rejected(editor, videos, tau):
    with pytest.raises(ValueError, match=r"tau must be a step of the schedule in \[-1, 99\]"):
        editor.inject(videos, SOURCE, TARGET, tau)


def test_videos_the_model_cannot_take_name_the_expected_shape(editor):
    for bad in (torch.zeros(2, 1, 4, 32, 32), torch.zeros(1, 4, 16, 16)):
        with pytest.raises(ValueError, match=r"expected source videos \(B, 1, 4, 16, 16\)"):
            editor.sdedit(bad, TARGET, 0.5)


def test_prompt_counts_must_match_the_videos(editor, videos):
    with pytest.raises(ValueError, match=r"one prompt per video \(2\), got 3"):
        editor.sdedit(videos, [TARGET] * 3, 0.5)
    with pytest.raises(ValueError, match=r"one prompt per video \(2\), got 1"):
        editor.inject(videos, [SOURCE, SOURCE], [TARGET], tau=50)


def test_unknown_edit_is_rejected(moving):
    data, labels = moving
    with pytest.raises(ValueError, match="edit must be one of"):
        edit_targets(labels, "colour", data.config)


def test_unknown_mode_and_misshapen_mask_are_rejected(editor, videos):
    with pytest.raises(ValueError, match="mode must be one of"):
        editor.sdedit(videos, TARGET, 0.5, mode="frames")
    with pytest.raises(ValueError, match="mask broadcastable"):
        editor.sdedit(videos, TARGET, 0.5, mask=torch.ones(3, 16, 16))
