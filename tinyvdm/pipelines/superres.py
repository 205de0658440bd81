"""Super-resolution stages of a cascade: more pixels (SSR) or more frames (TSR) from a low-resolution video.

Cascaded Diffusion Models (CDM, Ho et al. 2021) and Imagen Video (Ho et al. 2022): a stage learns p_θ(x | c),
x the high-resolution video and c the low-resolution one resized to x's size, concatenated to x_t channel-wise
(UNet3D's `ctx`):

    c = up(down(x))     down: average k×k pixels (SSR, area downsampling) or keep every k-th frame (TSR)
                        up:   bilinear per frame (SSR) or each frame repeated k times (TSR, nearest in time)

Nearest in time keeps every frame of c a real frame; linear blending would show two half-bright digits.

Noise-conditioning augmentation (CDM §4.2): a stage trained on true low-resolution videos but run on the
previous stage's samples meets inputs it never saw. Training therefore corrupts c by the forward process of the
same schedule at a random level s ~ U[0, s_max] and tells the net s (`ctx_level`):

    z_s = α_s c + σ_s ε,   α_s = √ᾱ(s),  σ_s = √(1 − ᾱ(s)),  ε ~ N(0, I).

Sampling fixes s (default 0.2): enough noise to hide the previous stage's artefacts, little enough to keep its
content. c is also replaced by ∅ = 0 with probability p_uncond, so a stage can be guided towards c (CFG).

    ssr = SuperResolution.load("data/checkpoints/ssr.pt")
    videos = ssr(lowres, aug_level=0.2, sampler="dpmpp", steps=20)     # (B, 1, 16, 32, 32) -> (B, 1, 16, 64, 64)
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

from ..data import MovingMNIST
from ..diffusion import GaussianDiffusion, drop_condition
from ..diffusion._batch import randn
from ..models import UNet3D
from .sampling import sample

KINDS = {"ssr": "spatial", "tsr": "temporal"}  # trainer task -> what its stage adds
NULL_CTX = torch.zeros(())  # ∅, the "no low-resolution video" condition of classifier-free guidance


class SuperResolution:
    """A trained stage: low-resolution videos (B, C, t, h, w) in, samples of p_θ(x | z_s) (B, C, T, H, W) out."""

    def __init__(self, net: UNet3D, diffusion: GaussianDiffusion, in_shape: tuple[int, ...],
                 out_shape: tuple[int, ...], name: str = "ssr"):
        if net.ctx_channels != out_shape[0] or net.level_mlp is None:
            raise ValueError(f"stage {name!r} needs a UNet3D(ctx_channels={out_shape[0]}, ctx_level=True), "
                             f"got ctx_channels={net.ctx_channels}, ctx_level={net.level_mlp is not None}")
        self.net, self.diffusion, self.name = net.eval(), diffusion, name
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", name: str | None = None) -> "SuperResolution":
        """A stage from a checkpoint of the "ssr" or "tsr" task (a run's ckpt.pt or an exported one)."""
        from ..train import load_checkpoint
        net, config, task = load_checkpoint(path, device=device)
        if config.task not in KINDS:
            raise ValueError(f"{path} holds a {config.task!r} model, not a super-resolution stage {sorted(KINDS)}")
        shape = lowres_shape(task.video_shape, KINDS[config.task], config.diffusion["factor"])
        return cls(net, task.diffusion, shape, task.video_shape, name or config.task)

    @torch.inference_mode()
    def __call__(self, lowres: torch.Tensor, sampler: str = "dpmpp", steps: int = 20, guidance: float = 1.0,
                 aug_level: float = 0.2, seed: int = 0, generator: torch.Generator | None = None,
                 progress: bool = False, return_nfe: bool = False):
        if lowres.ndim != 5 or tuple(lowres.shape[1:]) != self.in_shape:
            raise ValueError(f"stage {self.name!r} takes low-resolution videos (B, C, T, H, W) = (B, "
                             f"{', '.join(map(str, self.in_shape))}), got {tuple(lowres.shape)}")
        if not 0 <= aug_level <= 1:
            raise ValueError(f"stage {self.name!r}: aug_level s must be in [0, 1], got {aug_level}")
        device = next(self.net.parameters()).device
        generator = generator or torch.Generator(device).manual_seed(seed)
        b = lowres.shape[0]
        c = upsample(lowres.to(device), self.out_shape[1:])
        z = augment(c, torch.full((b,), float(aug_level), device=device), self.diffusion, generator)

        def denoiser(x_t, t, ctx):  # a guided call doubles the batch: one level per video
            return self.net(x_t, t, ctx=ctx, ctx_level=x_t.new_full((x_t.shape[0],), aug_level))

        videos, nfe = sample(self.diffusion, denoiser, (b, *self.out_shape), sampler, steps, cond=z,
                             guidance=guidance, null_cond=NULL_CTX, generator=generator, device=device,
                             progress=progress)
        videos = videos.clamp(-1, 1)
        return (videos, nfe) if return_nfe else videos


def augment(c: torch.Tensor, s: torch.Tensor, diffusion: GaussianDiffusion,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """z_s = √ᾱ(s) c + √(1 − ᾱ(s)) ε, levels s (B,) in [0, 1] on the chain's own schedule (CDM's augmentation)."""
    mean, std = diffusion.sde().marginal_prob(c, s.to(c.dtype))
    return mean + std * randn(c.shape, generator, c.device, c.dtype)


def downsample(x: torch.Tensor, kind: str, factor: int) -> torch.Tensor:
    """down(x): the mean of each factor×factor pixel block ("spatial") or every factor-th frame ("temporal")."""
    _check_video(x, "a high-resolution video")
    _, _, frames, h, w = x.shape
    if kind == "spatial":
        if h % factor or w % factor:
            raise ValueError(f"frame size {h}x{w} must be divisible by the factor {factor}")
        return F.avg_pool3d(x, (1, factor, factor))
    if kind == "temporal":
        if frames % factor:
            raise ValueError(f"{frames} frames must be divisible by the factor {factor}")
        return x[:, :, ::factor]
    raise ValueError(f"kind must be 'spatial' or 'temporal', got {kind!r}")


def upsample(c: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """up(c) to size (T, H, W): each frame repeated T/t times (nearest in time), then bilinear per frame."""
    _check_video(c, "a low-resolution video")
    b, _, frames, h, w = c.shape
    T, H, W = size
    if T % frames or H < h or W < w:
        raise ValueError(f"cannot upsample (T, H, W) = {(frames, h, w)} to {tuple(size)}: "
                         "the frames must divide and the frames may only grow")
    c = c.repeat_interleave(T // frames, dim=2)
    if (h, w) != (H, W):
        flat = F.interpolate(rearrange(c, "b c t h w -> (b t) c h w"), size=(H, W), mode="bilinear",
                             align_corners=False)
        c = rearrange(flat, "(b t) c h w -> b c t h w", b=b)
    return c


def lowres_shape(shape: tuple[int, ...], kind: str, factor: int) -> tuple[int, ...]:
    """(C, T, H, W) of down(x) for videos x of `shape`."""
    return tuple(downsample(torch.zeros(1, *shape), kind, factor).shape[1:])


def superres_task(config, name: str):
    """The trainer's task "ssr" or "tsr": x_0 = Moving MNIST of `config.data`, c = up(down(x_0)), the loss of
    p_θ(x | z_s) with s ~ U[0, s_max] and c dropped to ∅ with probability p_uncond (`config.diffusion`).

    With `diffusion.image_batch` = N > 0, each batch also holds N single frames of other videos with their frame
    of c, learnt in image mode (joint image-video training, VDM §3): c already says where the digit is, so single
    frames teach the strokes at 1/T of a video's cost.
    """
    from ..train import Task, make_diffusion, random_videos, step_generator

    kind = KINDS[name]
    factor, s_max, p_uncond, image_batch = (config.diffusion[k]
                                            for k in ("factor", "s_max", "p_uncond", "image_batch"))
    if not 0 <= s_max <= 1:
        raise ValueError(f"diffusion.s_max must be in [0, 1], got {s_max}")
    diffusion = make_diffusion(config)
    data = MovingMNIST(**config.data)
    video_shape = (1, data.config.frames, data.config.size, data.config.size)
    shape = lowres_shape(video_shape, kind, factor)
    net = UNet3D(**config.model)

    def pair(x0):
        return x0, upsample(downsample(x0, kind, factor), video_shape[1:])

    def batch_fn(step: int):
        batch = pair(random_videos(data, config, step)[0])
        if not image_batch:
            return batch
        clips, c = pair(random_videos(data, config, step, n=image_batch, stream="images")[0])
        frame = torch.randint(video_shape[1], (image_batch,), generator=step_generator(config.seed, step, "frames"))
        pick = torch.arange(image_batch), slice(None), frame
        return batch + (clips[pick][:, :, None], c[pick][:, :, None])  # (N, C, T, H, W) -> (N, C, 1, H, W)

    def conditioned_loss(model, x0, c, generator, **mode):
        source = generator.device if generator is not None else torch.device("cpu")
        s = (s_max * torch.rand(x0.shape[0], generator=generator, device=source)).to(x0.device)
        z = drop_condition(augment(c, s, diffusion, generator), NULL_CTX, p_uncond, generator)
        return diffusion.training_loss(lambda x, t, ctx: model(x, t, ctx=ctx, ctx_level=s, **mode), x0, cond=z,
                                       generator=generator)

    def loss_fn(model, batch, generator):
        x0, c, *images = batch
        loss = conditioned_loss(model, x0, c, generator)
        return loss + conditioned_loss(model, *images, generator, image_mode=True) if images else loss

    def sample_fn(model, n, sampler="dpmpp", steps=20, eta=0.0, generator=None, progress=True, lowres=None,
                  guidance=1.0, aug_level=0.2):
        if lowres is None:  # the test split's low-resolution videos
            x0 = MovingMNIST(**{**config.data, "split": "test", "length": n}).batch(range(n))[0]
            lowres = downsample(x0, kind, factor)
        stage = SuperResolution(model, diffusion, shape, video_shape, name)
        return stage(lowres, sampler, steps, guidance, aug_level, generator=generator, progress=progress)

    return Task(net, loss_fn, batch_fn, sample_fn, diffusion, video_shape)


def _check_video(x, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 5:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected {what} (B, C, T, H, W), got {got}")
