"""Latent video diffusion (Video LDM, Blattmann et al. 2023; LDM, Rombach et al. 2022): the trainer's tasks.

    "autoencoder"        VideoAutoencoder(**model), L = |x - x̂|² + β KL + λ_t |Δ_t x̂ - Δ_t x|²  (`config.loss`)
    "latent_diffusion"   UNet3D trained on z = s μ(x), the latents of a frozen autoencoder scaled by
                         s = 1 / std(μ(x)) measured on the training videos, so that z has about unit
                         variance like the N(0, I) the chain ends in (LDM §4.3.2); samples decode as x = D(z / s).

The autoencoder trains in two runs: frames alone (`loss.image_mode=True`), then, from its weights
(`init_from`), only its temporal layers on videos (`train_only="temporal"`) with the flicker term.
The latent is the posterior mean μ(x): with a small β its σ is tiny, and a deterministic latent
makes the scale factor and the training data the same every time.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..data import MovingMNIST
from ..models import UNet3D, VideoAutoencoder
from ..models.autoencoder import autoencoder_loss
from .sampling import sample

SCALE_VIDEOS = 256  # training videos the scale factor is measured on


class LatentDiffusion(nn.Module):
    """A denoiser ε_θ(z_t, t, cond) (the U-Net) in the latent space of a frozen autoencoder, with the maps
    encode: x -> z = s μ(x) and decode: z -> D(z / s)."""

    def __init__(self, autoencoder: VideoAutoencoder, unet: UNet3D, scale_factor: float):
        super().__init__()
        self.autoencoder = autoencoder.requires_grad_(False)
        self.unet = unet
        self.register_buffer("scale_factor", torch.tensor(float(scale_factor)))

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return self.unet(z_t, t, cond, **kwargs)

    def latent_shape(self, video_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(C, T, H, W) of a video -> (c_z, T, H/f, W/f) of its latent."""
        frames, height, width = video_shape[1:]
        f = self.autoencoder.factor
        return self.autoencoder.latent_channels, frames, height // f, width // f

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Videos (B, C, T, H, W) -> scaled latents z = s μ(x) (B, c_z, T, H/f, W/f)."""
        return self.autoencoder.encode(x).mean * self.scale_factor

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> videos D(z / s) in [-1, 1]."""
        return self.autoencoder.decode(z / self.scale_factor).clamp(-1, 1)


@torch.no_grad()
def measure_scale_factor(autoencoder: VideoAutoencoder, videos: torch.Tensor) -> float:
    """s = 1 / std(μ(x)) over every latent value of `videos` (LDM's rescaling of the latent space)."""
    return 1.0 / autoencoder.encode(videos).mean.float().std().item()


def autoencoder_task(config):
    """VideoAutoencoder(**config.model) on Moving MNIST, loss options `config.loss`: kl_weight (β),
    temporal_weight (λ_t), image_mode (frames alone, temporal layers skipped), latent_noise (σ_n, default 0)."""
    from ..train import Task, random_videos

    data = MovingMNIST(**config.data)
    kl_weight, temporal_weight, image_mode = (config.loss[k] for k in ("kl_weight", "temporal_weight", "image_mode"))
    latent_noise = config.loss.get("latent_noise", 0.0)

    def batch_fn(step: int) -> torch.Tensor:
        return random_videos(data, config, step)[0]  # (B, 1, T, H, W)

    def loss_fn(model, x, generator):
        x_hat, posterior = model(x, generator=generator, image_mode=image_mode, latent_noise=latent_noise)
        return autoencoder_loss(x, x_hat, posterior, kl_weight, temporal_weight)

    video_shape = (config.model["in_channels"], data.config.frames, data.config.size, data.config.size)
    return Task(VideoAutoencoder(**config.model), loss_fn, batch_fn, video_shape=video_shape)


def latent_diffusion_task(config):
    """UNet3D(**config.model) trained by GaussianDiffusion.training_loss on the latents of the autoencoder
    checkpoint `config.model["autoencoder"]` (loaded frozen, EMA weights); sampling decodes to pixels.

    With text keys in config.model (text_dim, text_depth, max_len) it is t2v_task in latent space: the
    denoiser is a TextToVideoNet, its batches (captioned videos and frames) are encoded before the loss.
    """
    from ..train import ConfigError, Task, load_checkpoint, make_diffusion, random_videos
    from .t2v import TextToVideo, t2v_task

    unet = dict(config.model)
    path = unet.pop("autoencoder")
    autoencoder, ae_config, _ = load_checkpoint(path)
    if ae_config.task != "autoencoder":
        raise ConfigError(f"model.autoencoder must be a checkpoint of the 'autoencoder' task; {path} is "
                          f"{ae_config.task!r}")
    data = MovingMNIST(**config.data)
    scale = measure_scale_factor(autoencoder, random_videos(data, config, 0, n=SCALE_VIDEOS, stream="scale")[0])
    size = data.config.size
    video_shape = (autoencoder.in_channels, data.config.frames, size, size)

    if "text_dim" in unet:
        latent_model = {**unet, "in_channels": autoencoder.latent_channels}
        inner = t2v_task(dataclasses.replace(config, task="t2v", model=latent_model))
        net = LatentDiffusion(autoencoder, inner.model, scale)
        latent_shape = net.latent_shape(video_shape)

        def loss_fn(model, batch, generator):
            videos, ids, *images = batch  # frames (N, C, 1, H, W) encode like one-frame videos
            encoded = (net.encode(videos), ids) + ((net.encode(images[0]), images[1]) if images else ())
            return inner.loss_fn(model, encoded, generator)

        def sample_fn(model, n, sampler="dpmpp", steps=20, eta=0.0, generator=None, progress=True, prompts=None,
                      guidance=3.0):
            if prompts is None:
                _, prompts, _ = MovingMNIST(n, split="test", seed=config.seed).batch(range(n))
            return TextToVideo(model.unet, inner.diffusion, latent_shape, decode=model.decode)(
                prompts, guidance, sampler, steps, generator=generator, progress=progress)

        return Task(net, loss_fn, inner.batch_fn, sample_fn, inner.diffusion, video_shape)

    diffusion = make_diffusion(config)
    net = LatentDiffusion(autoencoder, UNet3D(in_channels=autoencoder.latent_channels, **unet), scale)
    latent_shape = net.latent_shape(video_shape)

    def batch_fn(step: int) -> torch.Tensor:
        return random_videos(data, config, step)[0]

    def loss_fn(model, x, generator):
        # `net`, not `model`: encoding needs no gradient, and `model` may be wrapped (DDP, compile)
        return diffusion.training_loss(model, net.encode(x), generator=generator)

    def sample_fn(model, n, sampler="ddim", steps=50, eta=0.0, generator=None, progress=True):
        device = next(model.parameters()).device
        z = sample(diffusion, model, (n, *latent_shape), sampler, steps, eta=eta, generator=generator,
                   device=device, progress=progress)[0]
        return model.decode(z)

    return Task(net, loss_fn, batch_fn, sample_fn, diffusion, video_shape)
