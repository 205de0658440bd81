"""Diffusion conditioned on known frames: one model for generation, prediction and interpolation (MCVD).

Masked Conditional Video Diffusion (Voleti, Jolicoeur-Martineau & Pal 2022): a mask m ∈ {0, 1}^T marks the
known frames x^a of a video x = (x^a, x^b); the net sees them, clean, next to the noisy frames it denoises,

    f_θ((1 − m) ⊙ x_t, t, ctx = [m ⊙ x_0, m])          (ctx concatenated channel-wise: UNet3D(ctx_channels=2))

and learns p_θ(x^b | x^a) from the loss on the unknown frames alone,

    L = E_{t, ε, m} w_t ‖(1 − m) ⊙ (f_θ − target)‖² / ‖1 − m‖₁        (target ε, x_0 or v, as in DDPM)

with masks drawn at random each step (`random_masks`): none known (generation), the first S known (prediction,
image-to-video when S = 1), every k-th known (interpolation). The known frames enter only through ctx, so at
sampling the sampler's state at those frames never matters, and `complete` puts them back exactly.

    videos = complete(diffusion, model, known, mask)        # any mask
    videos = interpolate(diffusion, model, video, factor=2)  # T -> 2T frames (temporal super-resolution)
    videos = predict(diffusion, model, context, frames=16)   # the first S frames -> 16 frames
"""
from __future__ import annotations

import torch
from einops import rearrange, repeat

from ..data import MovingMNIST
from ..diffusion import GaussianDiffusion
from ..diffusion._batch import randn
from .sampling import sample

MASK_KINDS = ("generation", "prediction", "interpolation")
EVERY = (2, 4)  # the strides of interpolation masks: 8 -> 16 and 4 -> 16 frames of a 16-frame video


def complete(diffusion: GaussianDiffusion, model, known: torch.Tensor, mask: torch.Tensor, sampler: str = "ddim",
             steps: int = 50, eta: float = 0.0, generator: torch.Generator | None = None,
             progress: bool = False) -> torch.Tensor:
    """Videos (B, C, T, H, W) sampled from p_θ(x^b | x^a): frames `mask` (T,) or (B, T) are `known`'s, exactly.

    `known` (B, C, T, H, W) holds the known frames; its other frames are ignored. `model` is a UNet3D(ctx_channels=2).
    """
    m = _check(model, known, mask)
    x, _ = sample(diffusion, conditioned(model, known, m), known.shape, sampler, steps, eta=eta, generator=generator,
                  device=known.device, progress=progress)
    return torch.where(m, known, x)


def interpolate(diffusion: GaussianDiffusion, model, video: torch.Tensor, factor: int = 2, **kwargs) -> torch.Tensor:
    """Temporal super-resolution: video (B, C, T, H, W) -> (B, C, factor·T, H, W), frame i of `video` at i·factor.

    The frames between two known ones are interpolated; the last factor − 1 frames are extrapolated.
    """
    if not isinstance(factor, int) or factor < 2:
        raise ValueError(f"factor must be an integer >= 2, got {factor!r}")
    _check_video(video, "video")
    B, C, T, H, W = video.shape
    known = video.new_zeros(B, C, factor * T, H, W)
    known[:, :, ::factor] = video
    return complete(diffusion, model, known, torch.arange(factor * T) % factor == 0, **kwargs)


class Interpolation:
    """A cascade stage of temporal super-resolution by masked interpolation: (B, C, T, H, W) -> (B, C, factor·T, H, W).

    The trained "frames" model fills in the frames between the given ones (`interpolate`); unlike the imagen-style
    TSR of `superres`, the given frames are kept exactly and there is no noise augmentation to set.
    """

    def __init__(self, net, diffusion: GaussianDiffusion, out_shape: tuple[int, ...], factor: int = 2,
                 name: str = "tsr"):
        C, T, H, W = out_shape
        if T % factor:
            raise ValueError(f"stage {name!r}: {T} frames are not {factor}x a whole number of frames")
        self.net, self.diffusion, self.factor, self.name = net.eval(), diffusion, factor, name
        self.in_shape, self.out_shape = (C, T // factor, H, W), tuple(out_shape)

    @classmethod
    def load(cls, path, device: str = "cpu", name: str = "tsr", factor: int = 2) -> "Interpolation":
        """The stage from a "frames" task checkpoint (a run's ckpt.pt or an exported one)."""
        from ..train import load_checkpoint
        net, config, task = load_checkpoint(path, device=device)
        if config.task != "frames":
            raise ValueError(f"{path} holds a {config.task!r} model, not a 'frames' model")
        return cls(net, task.diffusion, task.video_shape, factor, name)

    @torch.inference_mode()
    def __call__(self, video: torch.Tensor, sampler: str = "ddim", steps: int = 20, seed: int = 0,
                 generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        if video.ndim != 5 or tuple(video.shape[1:]) != self.in_shape:
            raise ValueError(f"stage {self.name!r} takes videos (B, C, T, H, W) = (B, "
                             f"{', '.join(map(str, self.in_shape))}), got {tuple(video.shape)}")
        device = next(self.net.parameters()).device
        generator = generator or torch.Generator(device).manual_seed(seed)
        return interpolate(self.diffusion, self.net, video.to(device), self.factor, sampler=sampler, steps=steps,
                           generator=generator, progress=progress).clamp(-1, 1)


def predict(diffusion: GaussianDiffusion, model, context: torch.Tensor, frames: int, **kwargs) -> torch.Tensor:
    """Future prediction: the first S frames `context` (B, C, S, H, W) -> videos (B, C, frames, H, W)
    that start with them.

    S = 1 is image-to-video.
    """
    _check_video(context, "context")
    B, C, S, H, W = context.shape
    if not S < frames:
        raise ValueError(f"expected fewer context frames than frames to make, got {S} context frames "
                         f"(context {tuple(context.shape)}) for frames={frames}")
    known = torch.cat([context, context.new_zeros(B, C, frames - S, H, W)], 2)
    return complete(diffusion, model, known, torch.arange(frames) < S, **kwargs)


def conditioned(model, known: torch.Tensor, mask: torch.Tensor):
    """The denoiser (x_t, t, cond) ↦ f_θ((1 − m) ⊙ x_t, t, cond, ctx = [m ⊙ x^a, m]) for a mask m (B, 1, T, 1, 1)."""
    ctx = frame_context(known, mask)
    unknown = (~mask).to(known.dtype)
    return lambda x_t, t, cond=None: model(x_t * unknown, t, cond, ctx=ctx)


def frame_context(known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ctx = [m ⊙ x^a, m]: (B, C, T, H, W) and a bool mask (B, 1, T, 1, 1) -> (B, C + 1, T, H, W)."""
    m = mask.to(known.dtype).expand(-1, -1, -1, *known.shape[-2:])  # (B, 1, T, 1, 1) -> (B, 1, T, H, W)
    return torch.cat([known * m, m], 1)


def random_masks(n: int, frames: int, generator: torch.Generator | None = None,
                 probs: tuple[float, float, float] = (0.2, 0.3, 0.5)) -> torch.Tensor:
    """n masks (n, frames) bool, each of a kind of MASK_KINDS drawn with `probs`:

    generation: none known; prediction: the first S known, S ~ U{1, …, frames − 1};
    interpolation: frames 0, k, 2k, … known, k ~ U(EVERY) (k < frames).
    """
    if frames <= min(EVERY) or len(probs) != len(MASK_KINDS) or min(probs) < 0 or sum(probs) <= 0:
        raise ValueError(f"expected frames > {min(EVERY)} (a frame between two known ones) and "
                         f"{len(MASK_KINDS)} probabilities {MASK_KINDS}, got frames={frames}, probs={probs}")
    kind = torch.multinomial(torch.tensor(probs, dtype=torch.float64), n, replacement=True, generator=generator)
    u = torch.rand(n, 2, generator=generator)
    S = 1 + (u[:, 0] * (frames - 1)).long()  # (n,) in 1 … frames − 1
    strides = torch.tensor([k for k in EVERY if k < frames])
    k = strides[(u[:, 1] * len(strides)).long()]  # (n,)
    t = torch.arange(frames)
    masks = torch.stack([torch.zeros(n, frames, dtype=torch.bool), t < S[:, None], t % k[:, None] == 0])  # (3, n, T)
    return masks[kind, torch.arange(n)]


def frames_loss(diffusion: GaussianDiffusion, model, x0: torch.Tensor, mask: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """E_{t, ε} w_t ‖(1 − m) ⊙ (f_θ((1 − m) ⊙ x_t, t, [m ⊙ x_0, m]) − target)‖² / ‖1 − m‖₁ for masks (B, T).

    x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, t ~ U{0, …, N − 1}; the known frames are given, so only the others are learnt.
    """
    m = rearrange(mask.to(x0.device), "b t -> b 1 t 1 1")
    source = generator.device if generator is not None else torch.device("cpu")
    t = torch.randint(0, diffusion.num_steps, (x0.shape[0],), generator=generator, device=source).to(x0.device)
    noise = randn(x0.shape, generator, x0.device, x0.dtype)
    out = conditioned(model, x0, m)(diffusion.q_sample(x0, t, noise), t)
    unknown = (~m).to(x0.dtype).expand_as(x0)
    error = ((out - diffusion.target(x0, noise, t)) ** 2 * unknown).sum((1, 2, 3, 4)) / unknown.sum((1, 2, 3, 4))
    return (error * diffusion.loss_weight.to(x0.device, x0.dtype)[t]).mean()


def frames_task(config):
    """The trainer's task: Moving MNIST videos with a random mask each, `frames_loss`, generation as its sample."""
    from ..models import UNet3D
    from ..train import Task, make_diffusion, random_videos, step_generator

    diffusion = make_diffusion(config)
    probs = tuple(config.diffusion["mask_probs"])
    data = MovingMNIST(**config.data)
    model = UNet3D(**config.model)
    video_shape = (config.model["in_channels"], data.config.frames, data.config.size, data.config.size)

    def batch_fn(step: int):
        videos = random_videos(data, config, step)[0]  # (B, 1, T, H, W)
        return videos, random_masks(len(videos), videos.shape[2], step_generator(config.seed, step, "masks"), probs)

    def loss_fn(model, batch, generator):
        return frames_loss(diffusion, model, *batch, generator)

    def sample_fn(model, n, sampler="ddim", steps=50, eta=0.0, generator=None, progress=True):
        device = next(model.parameters()).device
        known = torch.zeros(n, *video_shape, device=device)
        return complete(diffusion, model, known, torch.zeros(video_shape[1], dtype=torch.bool), sampler, steps, eta,
                        generator, progress)

    return Task(model, loss_fn, batch_fn, sample_fn, diffusion, video_shape)


def _check(model, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fail early on a model without frame conditioning, a bad video or mask; the mask as (B, 1, T, 1, 1) bool."""
    if getattr(model, "ctx_channels", None) != 2:
        raise ValueError(f"expected a UNet3D with ctx_channels=2 (the known frames and their mask), "
                         f"got ctx_channels={getattr(model, 'ctx_channels', None)}")
    _check_video(known, "known")
    B, C, T = known.shape[:3]
    if C != model.in_channels:
        raise ValueError(f"expected known frames with the model's {model.in_channels} channels (B, C, T, H, W), "
                         f"got {tuple(known.shape)}")
    mask = torch.as_tensor(mask, device=known.device)
    if mask.dtype != torch.bool:
        raise ValueError(f"expected a bool mask (True: a known frame), got {mask.dtype}")
    if mask.shape not in ((T,), (B, T)):
        raise ValueError(f"expected a mask of the T = {T} frames of known {tuple(known.shape)}, shaped ({T},) or "
                         f"({B}, {T}), got {tuple(mask.shape)}")
    return rearrange(mask if mask.ndim == 2 else repeat(mask, "t -> b t", b=B), "b t -> b 1 t 1 1")


def _check_video(video: torch.Tensor, name: str) -> None:
    if not isinstance(video, torch.Tensor) or video.ndim != 5:
        got = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"expected {name} as a video batch (B, C, T, H, W), got {got}")
