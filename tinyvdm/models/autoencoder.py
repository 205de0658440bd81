"""A KL-regularised video autoencoder with a temporal decoder (Video LDM, Blattmann et al. 2023).

    q(z | x) = N(μ(x), diag σ²(x))      a 2-D encoder on each frame, z (B, c_z, T, H/f, W/f), f = 2^(levels - 1)
    x̂ = D(z)                            a 2-D decoder whose residual blocks are each followed by a
                                        zero-initialised 3×1×1 temporal conv (UNet3D's TemporalConv)

First stage (Latent Diffusion, Rombach et al. 2022): frames are autoencoded one by one, temporal
layers skipped, with  L = |x - x̂|² + β KL(q(z | x) ‖ N(0, I))  and a small β, so that the latents
keep the detail but stay at a bounded scale. Second stage (Video LDM §3.1.1): every spatial weight is
frozen and only the temporal layers are trained, on videos, so that frames decoded from latents that
were encoded independently stop flickering; here the flicker is penalised by a temporal-difference
term |Δ_t x̂ - Δ_t x|² instead of Video LDM's video discriminator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .unet3d import TemporalConv


class VideoAutoencoder(nn.Module):
    """Videos (B, C, T, H, W) in [-1, 1] <-> latents (B, latent_channels, T, H/f, W/f), f = 2^(len(dim_mults) - 1).

    Level i has `dim * dim_mults[i]` channels; the default three levels downsample 4×.
    """

    def __init__(self, in_channels: int = 1, latent_channels: int = 4, dim: int = 16,
                 dim_mults: tuple[int, ...] = (1, 2, 4), groups: int = 8):
        super().__init__()
        channels = [dim * m for m in dim_mults]
        if any(c % groups for c in channels):
            raise ValueError(f"every level's channels {channels} must be divisible by groups={groups}")
        self.in_channels, self.latent_channels = in_channels, latent_channels
        self.factor = 2 ** (len(dim_mults) - 1)

        encoder = [nn.Conv2d(in_channels, dim, 3, padding=1)]
        c_prev = dim
        for level, c in enumerate(channels):
            encoder.append(ResBlock2d(c_prev, c, groups))
            if level < len(channels) - 1:
                encoder.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            c_prev = c
        encoder += [nn.GroupNorm(groups, c_prev), nn.SiLU(), nn.Conv2d(c_prev, 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*encoder)

        self.conv_in = nn.Conv2d(latent_channels, c_prev, 3, padding=1)
        self.blocks, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, c in reversed(list(enumerate(channels))):
            self.blocks.append(DecoderBlock(c_prev, c, groups))
            if level > 0:
                self.upsample.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                   nn.Conv2d(c, c, 3, padding=1)))
            c_prev = c
        self.norm_out = nn.GroupNorm(groups, dim)
        self.conv_out = nn.Conv2d(dim, in_channels, 3, padding=1)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, image_mode: bool = False,
                latent_noise: float = 0.0) -> tuple[torch.Tensor, DiagonalGaussian]:
        """x (B, C, T, H, W) -> (x̂ = D(z + σ_n ε), q(z | x)) with z ~ q(z | x) reparameterised and σ_n = latent_noise:
        latents perturbed frame by frame, as a diffusion model's samples are, for the temporal decoder to undo."""
        posterior = self.encode(x)
        z = posterior.sample(generator)
        if latent_noise:
            z = z + latent_noise * torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        return self.decode(z, image_mode=image_mode), posterior

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """q(z | x), frame by frame: x (B, C, T, H, W) -> mean and log-variance (B, latent_channels, T, H/f, W/f)."""
        self._check(x, self.in_channels, self.factor, "video")
        h = rearrange(x, "b c t h w -> (b t) c h w").contiguous(memory_format=torch.channels_last)
        mean, logvar = self.encoder(h).chunk(2, dim=1)
        to_video = lambda y: rearrange(y, "(b t) c h w -> b c t h w", b=x.shape[0])  # noqa: E731
        return DiagonalGaussian(to_video(mean), to_video(logvar))

    def decode(self, z: torch.Tensor, image_mode: bool = False) -> torch.Tensor:
        """D(z): z (B, latent_channels, T, h, w) -> (B, C, T, f h, f w); image_mode skips the temporal layers."""
        self._check(z, self.latent_channels, 1, "latent video")
        frames = z.shape[2]
        h = self.conv_in(rearrange(z, "b c t h w -> (b t) c h w").contiguous(memory_format=torch.channels_last))
        for level, block in enumerate(self.blocks):
            h = block(h, frames, image_mode)
            if level < len(self.upsample):
                h = self.upsample[level](h)
        h = self.conv_out(F.silu(self.norm_out(h)))
        return rearrange(h, "(b t) c h w -> b c t h w", t=frames).contiguous()

    @staticmethod
    def _check(x: torch.Tensor, channels: int, factor: int, what: str) -> None:
        if x.ndim != 5 or x.shape[1] != channels:
            raise ValueError(f"expected a {what} batch (B, {channels}, T, H, W), got {tuple(x.shape)}")
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(f"frame size {x.shape[-2]}x{x.shape[-1]} must be divisible by {factor} "
                             f"(the encoder downsamples {factor}x); got {tuple(x.shape)}")


class DiagonalGaussian:
    """q(z | x) = N(μ, diag exp(log σ²)), with log σ² clamped to [-30, 20] as in LDM."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean, self.logvar = mean, logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ ε, ε ~ N(0, I) (the reparameterisation trick, Kingma & Welling 2014)."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def kl(self) -> torch.Tensor:
        """KL(q ‖ N(0, I)) = ½ Σ_i (μ_i² + σ_i² - 1 - log σ_i²), summed over all but the batch dim -> (B,)."""
        return 0.5 * (self.mean ** 2 + self.logvar.exp() - 1 - self.logvar).flatten(1).sum(1)


def autoencoder_loss(x: torch.Tensor, x_hat: torch.Tensor, posterior: DiagonalGaussian, kl_weight: float,
                     temporal_weight: float = 0.0) -> torch.Tensor:
    """mean |x - x̂|² + β KL / (pixels per video) + λ_t mean |Δ_t x̂ - Δ_t x|²  (the KL per pixel, like the MSE)."""
    loss = F.mse_loss(x_hat.float(), x) + kl_weight * posterior.kl().float().mean() / x[0].numel()
    return loss + temporal_weight * flicker(x_hat.float(), x) if temporal_weight else loss


def flicker(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """mean |Δ_t x̂ - Δ_t x|², Δ_t x = x_{t+1} - x_t: frame-to-frame change the reconstruction adds or misses."""
    return F.mse_loss(x_hat.diff(dim=2), x.diff(dim=2))


class ResBlock2d(nn.Module):
    """x = skip(x) + conv(SiLU(GN(conv(SiLU(GN(x))))))  on frames (N, C, H, W)."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(groups, c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  nn.GroupNorm(groups, c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class DecoderBlock(nn.Module):
    """A spatial ResBlock2d, then a temporal conv across frames (identity at init; skipped in image mode)."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.spatial = ResBlock2d(c_in, c_out, groups)
        self.temporal = TemporalConv(c_out, groups)

    def forward(self, x: torch.Tensor, frames: int, image_mode: bool) -> torch.Tensor:
        x = self.spatial(x)
        return x if image_mode else self.temporal(x, frames)
