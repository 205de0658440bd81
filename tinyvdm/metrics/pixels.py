"""Pixel-level quality against ground truth (PSNR, SSIM) and a Fréchet distance that sees every pixel.

For videos (B, C, T, H, W) in [-1, 1] (data range L = 2); each returns one value per video (B,).

    PSNR = 10 log10(L² / MSE)
    SSIM = mean over frames and windows of  (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2))

SSIM (Wang et al. 2004): local means, variances and covariance under an 11×11 Gaussian window (σ = 1.5), over
the windows that fit in the frame, C1 = (0.01 L)², C2 = (0.03 L)².

`patch_frechet`: the evaluator reads frames at 32×32, so it cannot tell a sharp 64×64 video from a blurred
one. This distance fits Gaussians to the video's raw space-time patches (2 frames × 8×8 pixels, on a grid)
and takes their Fréchet distance: the patches' covariance holds the strokes' edges and their motion at
full resolution, so blur and wrong textures move it. It knows nothing of digits: use it beside the evaluator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from .frechet import FrechetScore, frechet_distance

DATA_RANGE = 2.0  # videos live in [-1, 1]


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """10 log10(L² / MSE) per video (B,), in dB; inf where x = y."""
    _check_pair(x, y)
    mse = (x.double() - y.double()).square().flatten(1).mean(1)
    return (10 * torch.log10(DATA_RANGE ** 2 / mse)).float()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per video (B,) over its frames and every window position (Wang et al. 2004)."""
    _check_pair(x, y)
    if min(x.shape[-2:]) < window:
        raise ValueError(f"SSIM's {window}x{window} window does not fit frames of {tuple(x.shape[-2:])}")
    b, c = x.shape[:2]
    g = torch.exp(-(torch.arange(window, dtype=torch.float64) - (window - 1) / 2) ** 2 / (2 * sigma ** 2))
    kernel = (g[:, None] * g[None, :] / g.sum() ** 2).expand(c, 1, window, window)  # separable, sums to 1
    x, y = (rearrange(v.double(), "b c t h w -> (b t) c h w") for v in (x, y))

    def mean(v):  # local mean under the window, over the positions where it fits ("valid")
        return F.conv2d(v, kernel, groups=c)

    mu_x, mu_y = mean(x), mean(y)
    var_x, var_y, cov = mean(x * x) - mu_x ** 2, mean(y * y) - mu_y ** 2, mean(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2
    index = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return rearrange(index, "(b t) c h w -> b (t c h w)", b=b).mean(1).float()


def patch_features(videos: torch.Tensor, frames: int = 2, size: int = 8) -> torch.Tensor:
    """Non-overlapping space-time patches (frames × size × size) of videos (B, C, T, H, W)
    as rows (N, C·frames·size²)."""
    if videos.ndim != 5 or videos.shape[2] < frames or min(videos.shape[3:]) < size:
        raise ValueError(f"expected videos (B, C, T, H, W) with T >= {frames} and H, W >= {size}, "
                         f"got {tuple(videos.shape)}")
    patches = F.unfold(rearrange(videos.double(), "b c t h w -> b (c t) h w"), size, stride=size)  # (B, C·T·s², L)
    b, c, t = videos.shape[:3]
    patches = rearrange(patches, "b (c t k) l -> b c t k l", c=c, t=t)[:, :, :t - t % frames]
    return rearrange(patches, "b c (n f) k l -> (b n l) (c f k)", f=frames)


def patch_frechet(videos_a: torch.Tensor, videos_b: torch.Tensor, frames: int = 2, size: int = 8) -> FrechetScore:
    """Fréchet distance between Gaussians fitted to the space-time patches of two video sets (n counts patches)."""
    if videos_a.shape[1:] != videos_b.shape[1:]:
        raise ValueError(f"both video sets need the same (C, T, H, W), got {tuple(videos_a.shape[1:])} and "
                         f"{tuple(videos_b.shape[1:])}")
    return frechet_distance(patch_features(videos_a, frames, size), patch_features(videos_b, frames, size),
                            f"patch FD ({frames}x{size}x{size})", "patches")


def _check_pair(x, y) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 5 or not isinstance(y, torch.Tensor) or x.shape != y.shape:
        shapes = [tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for v in (x, y)]
        raise ValueError(f"expected two video batches (B, C, T, H, W) of one shape, got {shapes[0]} and {shapes[1]}")
