"""Latent video diffusion: the KL of the posterior, 4x latents, the temporal decoder's identity start,
frozen-spatial training, the autoencoder learning, the latent scale factor, sampling back to pixels."""
import math
from dataclasses import replace

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from tinyvdm.data import MovingMNIST
from tinyvdm.models import DiagonalGaussian, VideoAutoencoder
from tinyvdm.models.autoencoder import flicker
from tinyvdm.pipelines.latent import LatentDiffusion, measure_scale_factor
from tinyvdm.train import ConfigError, build_task, get_preset, load_checkpoint, train


def tiny(name: str, tmp_path, **changes):
    return replace(get_preset(name), out_dir=str(tmp_path / name), threads=1, progress=False, **changes)


@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory):
    """autoencoder-tiny, trained once for the module (30 steps, a few seconds)."""
    return train(tiny("autoencoder-tiny", tmp_path_factory.mktemp("ae")))


def test_kl_matches_the_closed_form_and_a_monte_carlo_estimate():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(2, 3, 2, 2, 2, generator=g), torch.randn(2, 3, 2, 2, 2, generator=g)
    q = DiagonalGaussian(mean, logvar)
    exact = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).flatten(1).sum(1)
    torch.testing.assert_close(q.kl(), exact)
    # KL(q || p) = E_q[log q(z) - log p(z)], with z from q.sample: checks the reparameterised sample too
    z = torch.stack([q.sample(g) for _ in range(20_000)])
    log_ratio = (Normal(mean, q.std).log_prob(z) - Normal(0.0, 1.0).log_prob(z)).flatten(2).sum(2)
    stderr = log_ratio.std(0) / math.sqrt(len(z))
    assert ((log_ratio.mean(0) - q.kl()).abs() < 4 * stderr).all(), (log_ratio.mean(0), q.kl(), stderr)


def test_encoder_downsamples_4x_and_decoder_restores_the_size():
    ae = VideoAutoencoder()
    x = torch.rand(2, 1, 3, 32, 16) * 2 - 1
    q = ae.encode(x)
    assert q.mean.shape == q.logvar.shape == (2, 4, 3, 8, 4)
    assert ae.decode(q.mean).shape == x.shape
    with pytest.raises(ValueError, match=r"expected a video batch \(B, 1, T, H, W\), got \(2, 32, 32\)"):
        ae.encode(torch.zeros(2, 32, 32))
    with pytest.raises(ValueError, match="divisible by 4"):
        ae.encode(torch.zeros(1, 1, 2, 30, 32))


def test_latent_noise_perturbs_each_frames_latent_before_decoding():
    torch.manual_seed(0)
    ae = VideoAutoencoder()
    x = torch.rand(2, 1, 3, 16, 16) * 2 - 1
    x_hat, q = ae(x, generator=torch.Generator().manual_seed(1), latent_noise=0.5)
    g = torch.Generator().manual_seed(1)
    z = q.sample(g)
    torch.testing.assert_close(x_hat, ae.decode(z + 0.5 * torch.randn(z.shape, generator=g)))
    assert not torch.allclose(x_hat, ae(x, generator=torch.Generator().manual_seed(1))[0])


def test_temporal_decoder_starts_as_identity_so_video_decoding_is_per_frame_decoding():
    torch.manual_seed(0)
    ae = VideoAutoencoder()
    z = torch.randn(2, 4, 5, 8, 8)
    video = ae.decode(z)
    frames = torch.cat([ae.decode(z[:, :, i:i + 1]) for i in range(5)], dim=2)
    torch.testing.assert_close(video, frames, rtol=0, atol=1e-6)
    assert torch.equal(video, ae.decode(z, image_mode=True))
    with torch.no_grad():  # a trained temporal layer mixes frames: the same check now fails
        ae.blocks[0].temporal.conv.weight.normal_()
    assert (ae.decode(z) - frames).abs().max() > 1e-2


def test_frozen_spatial_training_changes_only_temporal_weights_of_an_image_model_made_video(tmp_path):
    image = train(tiny("tiny", tmp_path, task="image_diffusion", steps=3, warmup=1))
    run = tiny("tiny", tmp_path / "video", init_from=str(image.checkpoint), train_only="temporal", steps=3, warmup=1)
    video = train(run).model
    start = {k.removeprefix("unet."): v for k, v in image.ema.state_dict().items()}
    temporal = [n for n, _ in video.named_parameters() if ".temporal." in n]
    for name, p in video.named_parameters():
        if name not in temporal:
            assert torch.equal(p, start[name]), f"spatial weight {name} changed"
    assert all(not start[n].any() for n in temporal if "conv.weight" in n)  # image models never train them
    assert any(not torch.equal(dict(video.named_parameters())[n], start[n]) for n in temporal)
    with pytest.raises(ConfigError, match="train_only must be one of"):
        train(replace(run, train_only="spatial"))


def test_a_tiny_autoencoder_run_reduces_the_reconstruction_error(autoencoder_run):
    x = MovingMNIST(**autoencoder_run.config.data | {"length": 16, "split": "test"}).batch(range(16))[0]
    torch.manual_seed(0)
    untrained = VideoAutoencoder(**autoencoder_run.config.model)
    with torch.no_grad():
        before = (untrained.decode(untrained.encode(x).mean, image_mode=True) - x).square().mean()
        after = (autoencoder_run.model.decode(autoencoder_run.model.encode(x).mean, image_mode=True)
                 - x).square().mean()
    assert after < 0.3 * before, f"reconstruction MSE {before:.3f} -> {after:.3f}"


def test_temporal_finetuning_trains_the_decoder_against_flicker_with_spatial_weights_frozen(autoencoder_run, tmp_path):
    config = tiny("autoencoder-tiny", tmp_path, init_from=str(autoencoder_run.checkpoint), train_only="temporal",
                  loss={"kl_weight": 1e-5, "temporal_weight": 1.0, "image_mode": False}, steps=10, warmup=1)
    tuned = train(config).model
    for name, p in tuned.named_parameters():
        if ".temporal." not in name:
            assert torch.equal(p, autoencoder_run.ema.state_dict()[name]), f"spatial weight {name} changed"
    x = MovingMNIST(**config.data | {"length": 8, "split": "test"}).batch(range(8))[0]
    with torch.no_grad():
        assert torch.isfinite(flicker(tuned.decode(tuned.encode(x).mean), x))


def test_latent_scale_factor_gives_unit_std_and_samples_decode_to_pixel_videos(autoencoder_run, tmp_path):
    config = tiny("latent-tiny", tmp_path, model=get_preset("latent-tiny").model
                  | {"autoencoder": str(autoencoder_run.checkpoint)})
    net = build_task(config).model
    x = MovingMNIST(**config.data | {"length": 64, "split": "test"}).batch(range(64))[0]  # not the measured videos
    z = net.encode(x)
    assert z.shape == (64, 4, 4, 4, 4)
    assert abs(z.std().item() - 1) < 0.05, f"scaled latent std {z.std().item():.3f}"
    with torch.no_grad():  # an autoencoder whose latents are 5x larger gets a 5x smaller scale factor
        net.autoencoder.encoder[-1].weight.mul_(5)
        net.autoencoder.encoder[-1].bias.mul_(5)
    train_videos = MovingMNIST(**config.data).batch(range(256))[0]
    rescaled = LatentDiffusion(net.autoencoder, net.unet, measure_scale_factor(net.autoencoder, train_videos))
    assert abs(rescaled.encode(x).std().item() - 1) < 0.05 and abs(net.encode(x).std().item() - 5) < 0.5
    result = train(config)  # the checkpoint holds the trained autoencoder's scale, not the one edited above
    model, _, task = load_checkpoint(result.checkpoint)
    assert model.scale_factor == net.scale_factor and not any(p.requires_grad for p in model.autoencoder.parameters())
    videos = task.sample(model, 2, steps=3, generator=torch.Generator().manual_seed(0), progress=False)
    assert videos.shape == (2, 1, 4, 16, 16) and videos.abs().max() <= 1
    with pytest.raises(ConfigError, match="'autoencoder' task"):
        build_task(replace(config, model=config.model | {"autoencoder": str(result.checkpoint)}))


def test_latent_text_to_video_trains_on_latents_and_loads_as_a_text_to_video_model(autoencoder_run, tmp_path):
    from tinyvdm.pipelines.t2v import TextToVideo, TextToVideoNet

    config = tiny("latent-t2v-tiny", tmp_path, model=get_preset("latent-t2v-tiny").model
                  | {"autoencoder": str(autoencoder_run.checkpoint)})
    task = build_task(config)
    assert isinstance(task.model.unet, TextToVideoNet) and task.model.unet.unet.in_channels == 4
    seen = []  # the denoiser sees 4-channel latents at 1/4 of the size: videos and joint-training frames
    handle = task.model.unet.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    loss = task.loss_fn(task.model, task.batch_fn(0), torch.Generator().manual_seed(0))
    handle.remove()
    assert torch.isfinite(loss) and seen == [(4, 4, 4, 4, 4), (4, 4, 1, 4, 4)]
    result = train(config)
    t2v = TextToVideo.load(result.checkpoint)
    assert t2v.video_shape == (4, 4, 4, 4) and t2v.decode is not None
    videos = t2v(["the digit 3 moves left", ""], guidance=2.0, sampler="ddim", steps=3)
    assert videos.shape == (2, 1, 4, 16, 16) and videos.abs().max() <= 1
