"""Classifier-free guidance (Ho & Salimans 2021): one model, trained with and without its condition, steers itself.

Training drops the condition, replacing it by a learned "null" condition ∅ with probability p (`drop_condition`).
Sampling then extrapolates from the unconditional prediction towards the conditional one,

    ε̃(x_t, t, c) = ε(x_t, t, ∅) + w (ε(x_t, t, c) − ε(x_t, t, ∅)),

w = 0 unconditional, w = 1 conditional, w > 1 sharper and less diverse. In scores this is ∇ log p_t(x)
+ w ∇ log p_t(c | x): sampling from ∝ p_t(x) p_t(c | x)^w. Because x̂_0, ε̂ and v̂ are affine in each other
for a fixed x_t and t, the same combination of raw outputs works for every parametrisation.
"""
from __future__ import annotations

import torch
from einops import rearrange


def classifier_free_guidance(model, scale: float, null_cond):
    """A denoiser (x_t, t, cond) ↦ out(∅) + scale (out(c) − out(∅)), from one model call on a doubled batch.

    `null_cond` is the condition meaning "none" (e.g. a class id reserved for it, or an empty embedding); it
    broadcasts to the shape of `cond`. With cond=None the model runs once, unguided.
    """
    def guided(x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        if cond is None:
            return model(x_t, t, None)
        null = _broadcast_null(null_cond, cond)
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, null]))  # (2B, …)
        conditional, unconditional = both.chunk(2)
        return unconditional + scale * (conditional - unconditional)
    return guided


def drop_condition(cond: torch.Tensor, null_cond, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each sample's condition by `null_cond` with probability p (training for classifier-free guidance)."""
    if not 0 <= p <= 1:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    source = generator.device if generator is not None else torch.device("cpu")
    drop = (torch.rand(cond.shape[0], generator=generator, device=source) < p).to(cond.device)
    drop = rearrange(drop, "b -> b" + " 1" * (cond.ndim - 1))  # (B,) -> (B, 1, …, 1)
    return torch.where(drop, _broadcast_null(null_cond, cond), cond)


def _broadcast_null(null_cond, cond: torch.Tensor) -> torch.Tensor:
    null = torch.as_tensor(null_cond, dtype=cond.dtype, device=cond.device)
    try:
        return torch.broadcast_to(null, cond.shape)
    except RuntimeError:
        raise ValueError(f"null_cond of shape {tuple(null.shape)} does not broadcast to the condition's shape "
                         f"{tuple(cond.shape)}; expected one condition's shape {tuple(cond.shape[1:])}") from None
