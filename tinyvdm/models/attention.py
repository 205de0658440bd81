"""Attention for video U-Nets: spatial, temporal (with relative position bias), cross-frame, cross.

Every layer is one `Attention`, softmax(q kᵀ / √d + bias) v (Vaswani et al. 2017), computed by
`F.scaled_dot_product_attention`; the layers below only decide which tokens attend to which:

    SpatialAttention    tokens = the H·W pixels of one frame           (B·T, H·W, C)
      cross_frame=True  … keys/values from frame 0 and frame i-1       (Tune-A-Video, Wu et al. 2023)
    TemporalAttention   tokens = the T frames at one pixel, bias b(j-i) (Video Diffusion Models, Ho et al. 2022)
    CrossAttention      queries = pixels, keys/values = context tokens (B·T, L, cond_dim)

Hook for video editing (Plug-and-Play, FateZero, Text2Video-Zero): set `attn.qkv_hook = fn` on any
`Attention`; `fn(q, k, v)` receives the tensors that enter softmax(q kᵀ/√d + bias) v, shaped
(N, heads, L, d) for q and (N, heads, S, d) for k and v, and returns the (q, k, v) to use. Return
them unchanged to record them, or return cached ones to inject them (same q and k = same attention
map). Set it back to None to remove it. A net's layers: `[m for m in net.modules() if isinstance(m, Attention)]`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

QKVHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class Attention(nn.Module):
    """Multi-head attention: softmax(q kᵀ / √d + bias) v with q = x W_q, k = c W_k, v = c W_v (c = context or x).

    `zero_init` starts the output projection at zero, so a residual `x + attn(x)` starts as the identity.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None = None, zero_init: bool = False):
        super().__init__()
        self.heads = heads
        inner = heads * head_dim
        self.self_attention = context_dim is None
        if self.self_attention:
            self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        else:
            self.to_q = nn.Linear(dim, inner, bias=False)
            self.to_kv = nn.Linear(context_dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        if zero_init:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)
        self.qkv_hook: QKVHook | None = None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                gather_kv: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """x (N, L, dim), context (N, S, context_dim), bias broadcastable to (N, heads, L, S) -> (N, L, dim).

        `gather_kv` maps keys and values (N, heads, S, d) to the ones each query row attends to
        (cross-frame attention gathers other frames' tokens with it; the hook sees the result).
        """
        if self.self_attention:
            q, k, v = rearrange(self.to_qkv(x), "n l (three h d) -> three n h l d", three=3, h=self.heads)
        else:
            q = rearrange(self.to_q(x), "n l (h d) -> n h l d", h=self.heads)
            k, v = rearrange(self.to_kv(context), "n s (two h d) -> two n h s d", two=2, h=self.heads)
        if gather_kv is not None:
            k, v = gather_kv(k), gather_kv(v)
        if self.qkv_hook is not None:
            q, k, v = self.qkv_hook(q, k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.to_out(rearrange(out, "n h l d -> n l (h d)"))


class SpatialAttention(nn.Module):
    """Self-attention among the H·W pixels of each frame; with `cross_frame`, frame i attends to frames 0 and i-1.

    Cross-frame (sparse-causal) attention, Tune-A-Video eq. 3: Q = W_q z_i, K = W_k [z_0, z_{i-1}],
    V = W_v [z_0, z_{i-1}], with z_{-1} := z_0. Keys and values are computed once per frame and gathered.
    """

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, head_dim)

    def forward(self, x: torch.Tensor, frames: int, cross_frame: bool = False) -> torch.Tensor:
        """x (B·T, C, H, W) -> x + attention, same shape."""
        h, w = x.shape[-2:]
        tokens = rearrange(x, "n c h w -> n (h w) c")
        gather_kv = _sparse_causal(frames) if cross_frame else None
        out = self.attn(self.norm(tokens), gather_kv=gather_kv)
        return x + rearrange(out, "n (h w) c -> n c h w", h=h, w=w)


def _sparse_causal(frames: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Keys (B·T, heads, N, d) -> for each frame i, [keys of frame 0, keys of frame i-1]: (B·T, heads, 2N, d)."""
    def gather(k: torch.Tensor) -> torch.Tensor:
        k = rearrange(k, "(b t) h n d -> b t h n d", t=frames)
        previous = (torch.arange(frames, device=k.device) - 1).clamp(min=0)
        pair = torch.cat([k[:, :1].expand_as(k), k[:, previous]], dim=3)  # (B, T, heads, 2N, d)
        return rearrange(pair, "b t h n d -> (b t) h n d")
    return gather


class TemporalAttention(nn.Module):
    """Self-attention among the T frames at each pixel, with a learned relative position bias b(j - i).

    Zero-initialised output: a new temporal layer starts as the identity, so the video net starts
    as the image net it extends (Make-A-Video, Singer et al. 2022).
    """

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, head_dim, zero_init=True)
        self.position_bias = RelativePositionBias(heads)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x (B·T, C, H, W) -> x + attention across frames, same shape."""
        h, w = x.shape[-2:]
        tokens = rearrange(x, "(b t) c h w -> (b h w) t c", t=frames)
        out = self.attn(self.norm(tokens), bias=self.position_bias(frames).to(x.dtype))
        return x + rearrange(out, "(b h w) t c -> (b t) c h w", h=h, w=w)


class RelativePositionBias(nn.Module):
    """T5's bucketed relative position bias b_h(j - i) (Raffel et al. 2020): exact for small offsets,
    log-spaced buckets up to `max_distance`, separate buckets for past and future."""

    def __init__(self, heads: int, num_buckets: int = 32, max_distance: int = 32):
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.bias = nn.Embedding(num_buckets, heads)

    def bucket(self, offset: torch.Tensor) -> torch.Tensor:
        """Offsets j - i (any integer shape) -> bucket ids in [0, num_buckets)."""
        half = self.num_buckets // 2
        exact = half // 2
        future = (offset > 0).long() * half
        distance = offset.abs()
        log_ratio = torch.log(distance.float().clamp(min=1) / exact) / math.log(self.max_distance / exact)
        far = (exact + (log_ratio * (half - exact)).long()).clamp(max=half - 1)
        return future + torch.where(distance < exact, distance, far)

    def forward(self, frames: int) -> torch.Tensor:
        """-> bias (heads, T, T) with entry [h, i, j] = b_h(j - i)."""
        positions = torch.arange(frames, device=self.bias.weight.device)
        offset = positions[None, :] - positions[:, None]  # (T, T): j - i
        return rearrange(self.bias(self.bucket(offset)), "i j h -> h i j")


class CrossAttention(nn.Module):
    """Each pixel attends to the L context tokens of its video (text, or any conditioning sequence)."""

    def __init__(self, dim: int, context_dim: int, heads: int, head_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, head_dim, context_dim=context_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (B·T, C, H, W), context (B·T, L, context_dim) -> x + attention, same shape as x."""
        h, w = x.shape[-2:]
        out = self.attn(self.norm(rearrange(x, "n c h w -> n (h w) c")), context=context)
        return x + rearrange(out, "n (h w) c -> n c h w", h=h, w=w)
