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
    temporal_weight (λ_t), image_mode (frames alone, temporal layers skipped)."""
    from ..train import Task, random_videos

    data = MovingMNIST(**config.data)
    kl_weight, temporal_weight, image_mode = (config.loss[k] for k in ("kl_weight", "temporal_weight", "image_mode"))

    def batch_fn(step: int) -> torch.Tensor:
        return random_videos(data, config, step)[0]  # (B, 1, T, H, W)

    def loss_fn(model, x, generator):
        x_hat, posterior = model(x, generator=generator, image_mode=image_mode)
        return autoencoder_loss(x, x_hat, posterior, kl_weight, temporal_weight)

    video_shape = (config.model["in_channels"], data.config.frames, data.config.size, data.config.size)
    return Task(VideoAutoencoder(**config.model), loss_fn, batch_fn, video_shape=video_shape)


def latent_diffusion_task(config):
    """UNet3D(**config.model) trained by GaussianDiffusion.training_loss on the latents of the autoencoder
    checkpoint `config.model["autoencoder"]` (loaded frozen, EMA weights); sampling decodes to pixels."""
    from ..train import ConfigError, Task, load_checkpoint, make_diffusion, random_videos

    unet = dict(config.model)
    path = unet.pop("autoencoder")
    autoencoder, ae_config, _ = load_checkpoint(path)
    if ae_config.task != "autoencoder":
        raise ConfigError(f"model.autoencoder must be a checkpoint of the 'autoencoder' task; {path} is "
                          f"{ae_config.task!r}")
    diffusion = make_diffusion(config)
    data = MovingMNIST(**config.data)
    scale = measure_scale_factor(autoencoder, random_videos(data, config, 0, n=SCALE_VIDEOS, stream="scale")[0])
    net = LatentDiffusion(autoencoder, UNet3D(in_channels=autoencoder.latent_channels, **unet), scale)
    size = data.config.size
    video_shape = (autoencoder.in_channels, data.config.frames, size, size)
    latent_shape = (autoencoder.latent_channels, data.config.frames, size // autoencoder.factor,
                    size // autoencoder.factor)

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
