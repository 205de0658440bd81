"""Cascade stages: the degradations, noise-conditioning augmentation, PSNR / SSIM, size chains, end to end."""
import math
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from tinyvdm.data import MovingMNIST
from tinyvdm.metrics import patch_frechet, psnr, ssim
from tinyvdm.pipelines import cascade as cascade_module
from tinyvdm.pipelines.cascade import Cascade
from tinyvdm.pipelines.superres import SuperResolution, augment, downsample, upsample
from tinyvdm.pipelines.t2v import TextToVideo
from tinyvdm.train import get_preset, load_checkpoint, make_diffusion, sample_cli, train


def trained(preset, folder, steps=3):
    config = get_preset(preset)
    config.out_dir, config.progress, config.steps, config.warmup = str(folder / preset), False, steps, 1
    return train(config).checkpoint


@pytest.fixture(scope="module")
def cascade(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cascade")
    net, _, task = load_checkpoint(trained("t2v-tiny", folder))
    base = TextToVideo(net, task.diffusion, task.video_shape)
    return Cascade(base, [SuperResolution.load(trained(p, folder), name=p[:3]) for p in ("tsr-tiny", "ssr-tiny")])


def test_augmentation_at_s0_leaves_ctx_unchanged_and_at_s_has_the_cosine_schedules_mean_and_std():
    diffusion = make_diffusion(get_preset("ssr"))
    c = torch.full((2, 1, 8, 32, 32), 0.5)
    s = torch.tensor([0.0, 0.3])
    z = augment(c, s, diffusion, torch.Generator().manual_seed(0))
    assert torch.equal(z[0], c[0])
    f = lambda tau: math.cos((tau + 0.008) / 1.008 * math.pi / 2) ** 2  # ᾱ(s) = f(s) / f(0)
    alpha_bar = f(0.3) / f(0.0)
    assert z[1].mean().item() == pytest.approx(math.sqrt(alpha_bar) * 0.5, abs=0.01)
    assert z[1].std().item() == pytest.approx(math.sqrt(1 - alpha_bar), rel=0.02)


def test_area_downsample_averages_blocks_and_upsample_restores_the_size():
    x = torch.rand(2, 1, 4, 8, 8) * 2 - 1
    low = downsample(x, "spatial", 2)
    assert low.shape == (2, 1, 4, 4, 4)
    assert torch.allclose(low[..., 1, 2], x[..., 2:4, 4:6].mean((-1, -2)))
    assert upsample(low, (4, 8, 8)).shape == x.shape
    assert torch.allclose(upsample(torch.full((1, 1, 4, 4, 4), 0.3), (4, 8, 8)), torch.tensor(0.3))


def test_temporal_downsample_keeps_even_frames_and_upsample_repeats_them():
    x = torch.randn(1, 1, 8, 4, 4)
    c = upsample(downsample(x, "temporal", 2), (8, 4, 4))
    assert torch.equal(c[:, :, 0::2], x[:, :, 0::2]) and torch.equal(c[:, :, 1::2], x[:, :, 0::2])
    with pytest.raises(ValueError, match="7 frames must be divisible by the factor 2"):
        downsample(x[:, :, :7], "temporal", 2)


def test_tsr_truth_at_speed_1_holds_the_course_video_in_its_even_frames():
    fine = MovingMNIST(6, split="test", frames=16, speed=1).batch(range(6))[0]
    course = MovingMNIST(6, split="test").batch(range(6))[0]
    assert torch.equal(downsample(fine, "temporal", 2), course)


def test_ssr_lowres_input_looks_like_the_course_videos():
    big = MovingMNIST(16, split="test", frames=4, size=64, digit_size=28, speed=2)
    x, _, labels = big.batch(range(16))
    course = MovingMNIST(16, split="test", frames=4, speed=1)
    same = course.render(big.sample_labels(range(16))["source"], (labels["positions"] + 0.5) / 2 - 0.5)
    assert psnr(downsample(x, "spatial", 2), same).mean() > 24  # half-pixel offsets when the 64-px corner is odd


def test_ssim_of_a_video_with_itself_is_one_and_of_constants_is_the_closed_form():
    x = torch.rand(2, 1, 3, 16, 16) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)
    a, b, c1 = 0.2, -0.4, (0.01 * 2) ** 2
    got = ssim(torch.full((1, 1, 2, 16, 16), a), torch.full((1, 1, 2, 16, 16), b))
    assert got.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert (ssim(x, noisy) < 0.9).all() and torch.allclose(ssim(x, noisy), ssim(noisy, x))


def test_psnr_of_a_constant_offset():
    x = torch.zeros(1, 1, 2, 8, 8)
    assert psnr(x, x + 0.1).item() == pytest.approx(10 * math.log10(4 / 0.01), rel=1e-5)


def test_patch_frechet_is_zero_for_one_set_and_grows_with_blur():
    real = MovingMNIST(16, split="test", frames=4, size=64, digit_size=28).batch(range(16))[0]
    blurred = upsample(downsample(real, "spatial", 4), (4, 64, 64))
    assert patch_frechet(real, real).value == pytest.approx(0, abs=1e-6)
    assert patch_frechet(real, blurred).value > 1.0
    assert patch_frechet(real, blurred).n_a == 16 * 2 * 64


def test_stages_that_do_not_chain_are_an_error_naming_the_stage_and_sizes(cascade):
    tsr, ssr = cascade.stages
    with pytest.raises(ValueError, match=r"stage 'ssr' takes videos \(C, T, H, W\) = \(1, 8, 16, 16\), but stage "
                                         r"'base' before it makes \(1, 4, 16, 16\)"):
        Cascade(cascade.base, [ssr])
    with pytest.raises(ValueError, match="two cascade stages are named 'tsr'"):
        Cascade(cascade.base, [tsr, SimpleNamespace(name="tsr", in_shape=(1, 8, 16, 16), out_shape=(1, 8, 16, 16))])
    with pytest.raises(ValueError, match=r"stage 'ssr' takes low-resolution videos .* = \(B, 1, 8, 16, 16\), "
                                         r"got \(1, 1, 8, 32, 32\)"):
        ssr(torch.zeros(1, 1, 8, 32, 32))
    with pytest.raises(ValueError, match=r"unknown stage\(s\) \['sr'\]"):
        cascade("a 3 moving left", sr={"steps": 2})


def test_tiny_cascade_runs_end_to_end_with_each_stages_size_and_seed(cascade):
    options = dict(base={"steps": 2, "guidance": 2.0}, tsr={"sampler": "ddim", "steps": 2, "aug_level": 0.0},
                   ssr={"steps": 2, "guidance": 2.0, "aug_level": 0.3})
    videos = cascade(["the digit 3 moves left", "an 8 goes up"], seed=1, return_stages=True, **options)
    assert [tuple(v.shape) for v in videos] == [(2, 1, 4, 16, 16), (2, 1, 8, 16, 16), (2, 1, 8, 32, 32)]
    assert all(v.abs().max() <= 1 for v in videos)
    again = cascade(["the digit 3 moves left", "an 8 goes up"], seed=1, **options)
    assert torch.equal(again, videos[-1])
    _, nfe = cascade.stages[1](videos[1], sampler="ddim", steps=3, guidance=2.0, return_nfe=True)
    assert nfe == 3  # the guided call is one model call on a doubled batch


def test_sample_cli_cascade_writes_the_last_stages_frames(cascade, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cascade_module.Cascade, "load", classmethod(lambda cls, device="cpu": cascade))
    out = tmp_path / "c.gif"
    sample_cli(["--cascade", "--prompt", "the digit 7 moves up", "--sampler", "dpmpp", "--steps", "2",
                "--out", str(out)])
    assert "(1, 8, 32, 32)" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.n_frames == 8


def test_the_shipped_cascade_loads_from_the_shipped_checkpoints_and_chains():
    shipped = Cascade.load()
    assert [s.name for s in shipped.stages] == ["tsr", "ssr"] and shipped.out_shape == (1, 16, 64, 64)


def test_missing_stage_checkpoint_names_the_training_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m tinyvdm train --preset tsr"):
        Cascade.load(tsr=tmp_path / "tsr.pt", ssr=tmp_path / "ssr.pt")
