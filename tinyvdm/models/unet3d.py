"""A 3D U-Net denoiser with factorized space-time layers (Video Diffusion Models, Ho et al. 2022).

    eps_hat = model(x_t, t, cond)            x_t (B, C, T, H, W), t (B,), cond (B, L, cond_dim) or None

Space and time are factorized: every 3D layer is a spatial layer applied to each frame (a 1×3×3
conv, attention among the pixels of a frame) followed by a temporal layer applied to each pixel
(a 3×1×1 conv, attention among the frames). Temporal layers start at zero, so at initialisation
the net is an image U-Net run on every frame (Make-A-Video; cross-frame attention is the exception:
it shares keys and values across frames from the start); `image_mode=True` skips them, which lets
the same net train on images and videos jointly (VDM §3). Inside, a video is a batch of
frames (B·T, C, H, W) kept channels-last, which a temporal conv reads as (B, C, T, H·W) with no copy.

Conditioning: `cond` (B, L, cond_dim) is a sequence of context vectors (e.g. text tokens); every
attention level cross-attends to all L tokens, and token 0, the pooled vector, is added to the
time embedding through a small MLP. `cond` (B, cond_dim) means L = 1.

Frame conditioning (cascades, prediction, interpolation): `ctx` (B, ctx_channels, T, H, W) is
concatenated to x_t channel-wise before the first conv — known frames and their mask (MCVD), or a
low-resolution video resized to the output's size (Imagen Video's super-resolution stages).
`ctx_level` (B,) in [0, 1], the noise level s of an augmented `ctx` (noise-conditioning
augmentation, Ho et al. 2021), is embedded like t and added to the time embedding.

Memory: `grad_checkpoint=True` keeps only each block's input during the forward pass and recomputes the
block in the backward pass (Chen et al. 2016): about a third more compute for activations of one block
at a time. `freeze_spatial` turns an image model into a video model (Make-A-Video, Video LDM): only the
temporal layers train.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import CrossAttention, SpatialAttention, TemporalAttention

TEMPORAL_ATTENTION = ("dense", "cross_frame", "none")


class UNet3D(nn.Module):
    """Video denoiser eps_theta(x_t, t, cond) -> tensor shaped like x_t.

    `t` is embedded as sinusoids of `t * time_scale`, tuned for discrete steps 0..999; for float
    times in (0, 1] use `time_scale=1000`. Level i has `dim * dim_mults[i]` channels at 1/2^i of the
    frame size, so H and W must be divisible by 2^(len(dim_mults) - 1); any number of frames works.
    Each level has `num_res_blocks` residual blocks on the way down and up (default: one, and two at
    the lowest resolution, where a parameter costs 1/16 of the FLOPs it costs at full size, Imagen's
    Efficient U-Net). Spatial attention (and cross-attention to `cond`) run at `attn_levels`
    (default: the lowest resolution) and in the middle block.

    temporal_attention: "dense" — attention across all frames with a relative position bias;
    "cross_frame" — no temporal attention, the spatial attention of frame i takes its keys and values
    from frames 0 and i-1 (Tune-A-Video); "none" — temporal convolutions only.
    """

    def __init__(self, in_channels: int = 1, dim: int = 32, dim_mults: tuple[int, ...] = (1, 2, 4),
                 temporal_attention: str = "dense", cond_dim: int | None = None, out_channels: int | None = None,
                 num_res_blocks: int | tuple[int, ...] | None = None, attn_levels: tuple[int, ...] | None = None,
                 heads: int = 4, head_dim: int = 32, groups: int = 8, time_scale: float = 1.0, patch_size: int = 1,
                 ctx_channels: int = 0, ctx_level: bool = False,
                 grad_checkpoint: bool = False):
        super().__init__()
        if temporal_attention not in TEMPORAL_ATTENTION:
            raise ValueError(f"temporal_attention must be one of {TEMPORAL_ATTENTION}, got {temporal_attention!r}")
        channels = [dim * m for m in dim_mults]
        if any(c % groups for c in channels):
            raise ValueError(f"every level's channels {channels} must be divisible by groups={groups}")
        attn_levels = (len(dim_mults) - 1,) if attn_levels is None else tuple(attn_levels)
        if num_res_blocks is None:
            blocks = (1,) * (len(dim_mults) - 1) + (2,)
        else:
            blocks = (num_res_blocks,) * len(dim_mults) if isinstance(num_res_blocks, int) else tuple(num_res_blocks)
        if len(blocks) != len(dim_mults) or min(blocks) < 1:
            raise ValueError(f"num_res_blocks must be >= 1 per level of dim_mults {tuple(dim_mults)}, "
                             f"got {num_res_blocks}")
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.temporal_attention, self.cond_dim, self.time_scale = temporal_attention, cond_dim, time_scale
        if ctx_channels < 0:
            raise ValueError(f"ctx_channels must be >= 0, got {ctx_channels}")
        self.ctx_channels, self.grad_checkpoint = ctx_channels, grad_checkpoint
        if patch_size < 1:
            raise ValueError(f"patch_size must be a positive integer, got {patch_size}")
        self.dim, self.patch_size, self.factor = dim, patch_size, patch_size * 2 ** (len(dim_mults) - 1)
        emb_dim = 4 * dim

        def mlp(d_in):  # an embedding into the residual blocks' FiLM input
            return nn.Sequential(nn.Linear(d_in, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        self.time_mlp = mlp(dim)
        self.cond_mlp = mlp(cond_dim) if cond_dim is not None else None
        self.level_mlp = mlp(dim) if ctx_level else None

        def block(c_in, c_out):
            return ResBlock(c_in, c_out, emb_dim, groups)

        def attention(c):
            return AttentionBlock(c, heads, head_dim, temporal_attention, cond_dim)

        self.conv_in = nn.Conv2d((in_channels + ctx_channels) * patch_size ** 2, dim, 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        c_prev = dim
        for level, c in enumerate(channels):
            layers = nn.ModuleList()
            for _ in range(blocks[level]):
                layers.append(block(c_prev, c))
                c_prev = c
                if level in attn_levels:
                    layers.append(attention(c))
            self.down.append(layers)
            if level < len(channels) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = nn.ModuleList([block(c_prev, c_prev), attention(c_prev), block(c_prev, c_prev)])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, c in reversed(list(enumerate(channels))):
            layers = nn.ModuleList()
            for i in range(blocks[level]):
                layers.append(block(c_prev + c if i == 0 else c, c))  # the first block takes the skip too
                c_prev = c
                if level in attn_levels:
                    layers.append(attention(c))
            self.up.append(layers)
            if level > 0:  # U-Net's up-convolution (Ronneberger et al. 2015): a stride-2 2×2 transposed conv
                self.upsample.append(nn.ConvTranspose2d(c, channels[level - 1], 2, stride=2))
                c_prev = channels[level - 1]
        self.norm_out = nn.GroupNorm(groups, dim)
        self.conv_out = nn.Conv2d(dim, self.out_channels * patch_size ** 2, 3, padding=1)
        self.to(memory_format=torch.channels_last)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None, *,
                image_mode: bool = False, ctx: torch.Tensor | None = None,
                ctx_level: torch.Tensor | None = None) -> torch.Tensor:
        """x_t (B, C, T, H, W), t (B,), cond (B, L, cond_dim) | (B, cond_dim) | None -> (B, out_channels, T, H, W).

        image_mode: treat the T frames as independent images (temporal layers skipped).
        ctx (B, ctx_channels, T, H, W): concatenated to x_t; ctx_level (B,) in [0, 1]: its augmentation noise level.
        """
        b, frames = self._check(x_t, t, cond)
        self._check_ctx(x_t, ctx, ctx_level)
        emb = self.time_mlp(timestep_embedding(t.float() * self.time_scale, self.dim))
        if self.level_mlp is not None:
            emb = emb + self.level_mlp(timestep_embedding(ctx_level.float() * 1000, self.dim))
        if ctx is not None:
            x_t = torch.cat([x_t, ctx.to(x_t.dtype)], dim=1)
        context = None
        if cond is not None:
            cond = cond[:, None] if cond.ndim == 2 else cond
            emb = emb + self.cond_mlp(cond[:, 0])
            context = repeat(cond, "b l d -> (b t) l d", t=frames)
        emb = repeat(emb, "b e -> (b t) e", t=frames)
        kw = dict(emb=emb, frames=frames, context=context, image_mode=image_mode)

        h = rearrange(x_t, "b c t h w -> (b t) c h w")
        h = F.pixel_unshuffle(h, self.patch_size).contiguous(memory_format=torch.channels_last)
        h = self.conv_in(h)
        skips = []
        for level, layers in enumerate(self.down):
            for layer in layers:
                h = self._run(layer, h, kw)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        for layer in self.mid:
            h = self._run(layer, h, kw)
        for level, layers in enumerate(self.up):  # lowest resolution first
            h = torch.cat([h, skips.pop()], dim=1)
            for layer in layers:
                h = self._run(layer, h, kw)
            if level < len(self.upsample):
                h = self.upsample[level](h)
        h = F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), self.patch_size)
        return rearrange(h, "(b t) c h w -> b c t h w", b=b).contiguous()

    def _run(self, layer: nn.Module, h: torch.Tensor, kw: dict) -> torch.Tensor:
        if self.grad_checkpoint and torch.is_grad_enabled():
            return checkpoint(layer, h, use_reentrant=False, **kw)
        return layer(h, **kw)

    def _check(self, x_t, t, cond) -> tuple[int, int]:
        if x_t.ndim != 5:
            raise ValueError(f"expected a video batch (B, C, T, H, W), got {tuple(x_t.shape)}")
        b, c, frames, h, w = x_t.shape
        if c != self.in_channels:
            raise ValueError(f"expected {self.in_channels} channels in (B, C, T, H, W), got {tuple(x_t.shape)}")
        if h % self.factor or w % self.factor:
            raise ValueError(f"frame size {h}x{w} must be divisible by {self.factor} (the U-Net downsamples "
                             f"{self.factor}x); got video {tuple(x_t.shape)}")
        if t.shape != (b,):
            raise ValueError(f"expected t of shape ({b},), one time per video, got {tuple(t.shape)}")
        if self.cond_dim is None and cond is not None:
            raise ValueError(f"this UNet3D is unconditional (cond_dim=None) but got cond {tuple(cond.shape)}")
        if self.cond_dim is not None:
            if cond is None:
                raise ValueError(f"this UNet3D needs cond (B, L, {self.cond_dim}) or (B, {self.cond_dim}), got None")
            if cond.ndim not in (2, 3) or cond.shape[0] != b or cond.shape[-1] != self.cond_dim:
                raise ValueError(f"expected cond ({b}, L, {self.cond_dim}) or ({b}, {self.cond_dim}), "
                                 f"got {tuple(cond.shape)}")
        return b, frames

    def _check_ctx(self, x_t, ctx, ctx_level) -> None:
        shape = (x_t.shape[0], self.ctx_channels, *x_t.shape[2:])
        if self.ctx_channels == 0 and ctx is not None:
            raise ValueError(f"this UNet3D takes no ctx (ctx_channels=0) but got ctx {tuple(ctx.shape)}")
        if self.ctx_channels and (ctx is None or tuple(ctx.shape) != shape):
            got = None if ctx is None else tuple(ctx.shape)
            raise ValueError(f"expected ctx {shape} (ctx_channels={self.ctx_channels}, the size of x_t), got {got}")
        if (self.level_mlp is not None) != (ctx_level is not None):
            need = "needs ctx_level (B,) in [0, 1]" if self.level_mlp is not None else "has no ctx_level embedding"
            got = None if ctx_level is None else tuple(ctx_level.shape)
            raise ValueError(f"this UNet3D {need}, got ctx_level {got}")
        if ctx_level is not None and tuple(ctx_level.shape) != (x_t.shape[0],):
            raise ValueError(f"expected ctx_level of shape ({x_t.shape[0]},), one level per video, "
                             f"got {tuple(ctx_level.shape)}")


def freeze_spatial(model: nn.Module) -> int:
    """Stop the gradient of every parameter outside a temporal layer (TemporalConv, TemporalAttention) of `model`,
    so that training adapts a trained image model to video; returns how many parameters still train."""
    temporal = {id(p) for m in model.modules() if isinstance(m, TEMPORAL_LAYERS) for p in m.parameters()}
    for p in model.parameters():
        if id(p) not in temporal:
            p.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (Transformer; DDPM): [cos(t ω_k), sin(t ω_k)], ω_k = max_period^(-k / (dim/2))."""
    half = dim // 2
    omega = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t[:, None] * omega[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class ResBlock(nn.Module):
    """Spatial residual block with FiLM time conditioning, then a zero-initialised temporal conv:

        h = conv(SiLU(GN(x))); h = conv(SiLU(GN(h) (1 + γ) + β)); x = skip(x) + h      (per frame, 1×3×3)
        x = x + conv_t(SiLU(GN(x)))                                                    (per pixel, 3×1×1)
    with (γ, β) = Linear(SiLU(emb)), the time (and pooled condition) embedding.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.temporal = TemporalConv(c_out, groups)

    def forward(self, x, emb, frames, image_mode, **_):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = rearrange(self.emb(F.silu(emb)), "n (two c) -> two n c 1 1", two=2)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        x = self.skip(x) + h
        return x if image_mode else self.temporal(x, frames)


class TemporalConv(nn.Module):
    """x + conv_t(SiLU(GN(x))) with a 3×1×1 conv across frames, zero-initialised (starts as the identity)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.conv = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))  # over (T, H·W): 3×1×1 in (T, H, W)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        if torch.is_grad_enabled() and not x.requires_grad and self.norm.weight.requires_grad:
            # after frozen spatial layers: torch's CPU channels-last GroupNorm backward crashes (torch 2.13) when only
            # its weights need a gradient, so ask for x's too
            x = x.detach().requires_grad_()
        h, w = x.shape[-2:]
        # (B·T, C, H, W) channels-last is (B, C, T, H·W) channels-last: a view, no copy
        out = self.conv(rearrange(F.silu(self.norm(x)), "(b t) c h w -> b c t (h w)", t=frames))
        return x + rearrange(out, "b c t (h w) -> (b t) c h w", h=h, w=w)


class AttentionBlock(nn.Module):
    """Spatial self-attention (cross-frame if asked), cross-attention to the context, temporal attention."""

    def __init__(self, channels: int, heads: int, head_dim: int, temporal_attention: str, cond_dim: int | None):
        super().__init__()
        self.cross_frame = temporal_attention == "cross_frame"
        self.spatial = SpatialAttention(channels, heads, head_dim)
        self.cross = CrossAttention(channels, cond_dim, heads, head_dim) if cond_dim is not None else None
        self.temporal = TemporalAttention(channels, heads, head_dim) if temporal_attention == "dense" else None

    def forward(self, x, frames, context, image_mode, **_):
        x = self.spatial(x, frames, cross_frame=self.cross_frame and not image_mode)
        if self.cross is not None:
            x = self.cross(x, context)
        if self.temporal is not None and not image_mode:
            x = self.temporal(x, frames)
        return x


TEMPORAL_LAYERS = (TemporalConv, TemporalAttention)
