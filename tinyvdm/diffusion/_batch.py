"""Helpers every diffusion module shares: per-sample values meeting a batch, seeded noise, checked model calls."""
from __future__ import annotations

import torch


def per_sample(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample value (B,) to (B, 1, …, 1) so it broadcasts against x (B, …), on x's device and dtype."""
    if value.ndim != 1 or value.shape[0] != x.shape[0]:
        raise ValueError(f"expected one value per sample, shape ({x.shape[0]},), got {tuple(value.shape)}")
    value = value.to(x.dtype).to(x.device)  # cast first: float64 tables cannot move to every device
    return value.view(-1, *[1] * (x.ndim - 1))  # (B,) -> (B, 1, …, 1); a view, as this runs on every step


def randn(shape, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device (so a seed means the same noise),
    then moved to `device`."""
    source = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(tuple(shape), generator=generator, device=source, dtype=dtype)
    return noise.to(device if device is not None else source)


def checked_call(fn, x: torch.Tensor, *args) -> torch.Tensor:
    """fn(x, *args), failing early unless the output has x's shape
    (a denoiser or score predicts one value per entry)."""
    out = fn(x, *args)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model returned {got}; expected a tensor shaped like x_t {tuple(x.shape)}")
    return out


def check_steps(steps: int, most: int | None = None) -> None:
    """Fail early unless `steps` is a positive integer (at most `most`)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if most is not None and steps > most:
        raise ValueError(f"steps must be at most {most} here, got {steps}")
