"""Text-to-video with classifier-free guidance on captioned Moving MNIST.

The denoiser reads the caption through a small text encoder trained jointly with the 3D U-Net,
ε_θ(x_t, t, E(c)). Training replaces the caption by the empty prompt ∅ with probability p_uncond
(Ho & Salimans 2021), so one network learns both ε_θ(x_t, t, c) and ε_θ(x_t, t, ∅); sampling uses

    ε̃ = ε_θ(x_t, t, ∅) + w (ε_θ(x_t, t, c) − ε_θ(x_t, t, ∅)).

    t2v = TextToVideo.load()                                     # the shipped checkpoint
    videos = t2v(["the digit 7 moves up and to the left"], guidance=3.0, sampler="dpmpp", steps=20)
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..data import HELD_OUT_PHRASINGS, PHRASINGS, MovingMNIST
from ..models import UNet3D
from ..models.text import TextEncoder, Tokenizer
from .sampling import sample

CHECKPOINT = Path(__file__).resolve().parents[2] / "data" / "checkpoints" / "t2v.pt"


class TextToVideoNet(nn.Module):
    """ε_θ(x_t, t, ids): token ids (B, L) -> text encoder -> the U-Net's cross-attention and pooled embedding."""

    def __init__(self, text_dim: int = 64, text_depth: int = 2, max_len: int = 16, **unet):
        super().__init__()
        self.tokenizer = Tokenizer(max_len=max_len)
        self.encoder = TextEncoder(len(self.tokenizer), text_dim, text_depth, max_len=max_len,
                                   pad_id=self.tokenizer.pad)
        self.unet = UNet3D(cond_dim=text_dim, **unet)
        self.register_buffer("null_ids", self.tokenizer("")[0], persistent=False)  # ∅: the empty prompt

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None, *,
                image_mode: bool = False) -> torch.Tensor:
        ids = self.null_ids.expand(x_t.shape[0], -1) if cond is None else cond
        return self.unet(x_t, t, cond=self.encoder(ids), image_mode=image_mode)


class TextToVideo:
    """A trained text-to-video model with its diffusion chain: prompts in, videos (B, 1, T, H, W) out."""

    def __init__(self, net: TextToVideoNet, diffusion, video_shape: tuple[int, ...], best_guidance: float = 3.0,
                 decode: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.net, self.diffusion, self.video_shape = net.eval(), diffusion, tuple(video_shape)
        self.best_guidance = best_guidance  # the default scale: the card's best, for a shipped model
        self.decode = decode  # latents -> videos, for a net that denoises an autoencoder's latents (video_shape's)

    @classmethod
    def load(cls, path: str | Path = CHECKPOINT, device: str = "cpu") -> "TextToVideo":
        from ..train import load_checkpoint
        if not Path(path).exists():
            raise FileNotFoundError(f"no text-to-video checkpoint at {path}; train one with "
                                    "`python -m tinyvdm train --preset t2v` (see data/checkpoints/t2v.json)")
        from .latent import LatentDiffusion
        net, config, task = load_checkpoint(path, device=device)
        if isinstance(net, LatentDiffusion):
            return cls(net.unet, task.diffusion, net.latent_shape(task.video_shape), card_guidance(path), net.decode)
        return cls(net, task.diffusion, task.video_shape, card_guidance(path))

    def __call__(self, prompts: str | list[str], guidance: float | None = None, sampler: str = "dpmpp", steps: int = 20,
                 seed: int = 0, generator: torch.Generator | None = None, progress: bool = False,
                 return_nfe: bool = False):
        guidance = self.best_guidance if guidance is None else guidance
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("expected at least one prompt")
        device = self.net.null_ids.device
        ids = self.net.tokenizer(prompts).to(device)
        generator = generator or torch.Generator(device).manual_seed(seed)
        videos, nfe = sample(self.diffusion, self.net, (len(prompts), *self.video_shape), sampler, steps, cond=ids,
                             guidance=guidance, null_cond=self.net.null_ids, generator=generator, device=device,
                             progress=progress)
        videos = self.decode(videos) if self.decode else videos.clamp(-1, 1)
        return (videos, nfe) if return_nfe else videos


def card_guidance(checkpoint: str | Path) -> float:
    """The best guidance scale measured in the card beside a checkpoint (`name.json`); 3.0 without a card."""
    card = Path(checkpoint).with_suffix(".json")
    return json.loads(card.read_text()).get("best_guidance", 3.0) if card.exists() else 3.0


def caption_prompts(n: int, seed: int = 0, held_out: float = 0.5) -> tuple[list[str], dict[str, torch.Tensor]]:
    """n captions of test-split videos, the last round(held_out n) in phrasings never seen in training.

    Returns (prompts, labels) with labels "digit" (n,), "direction" (n,) and "held_out" (n,) bool.
    """
    if n < 1 or not 0 <= held_out <= 1:
        raise ValueError(f"expected n >= 1 prompts and 0 <= held_out <= 1, got n={n}, held_out={held_out}")
    k = round(n * held_out)
    prompts, digits, directions = [], [], []
    for count, phrasings, offset in ((n - k, PHRASINGS, 0), (k, HELD_OUT_PHRASINGS, 1)):
        if count:
            data = MovingMNIST(count, split="test", seed=seed + offset, phrasings=phrasings)
            _, captions, labels = data.batch(range(count))
            prompts += captions
            digits.append(labels["digits"][:, 0])
            directions.append(labels["direction"][:, 0])
    held = torch.arange(n) >= n - k
    return prompts, {"digit": torch.cat(digits), "direction": torch.cat(directions), "held_out": held}


@torch.no_grad()
def caption_accuracy(t2v: TextToVideo, evaluator, n: int = 256, guidance: float = 3.0, sampler: str = "dpmpp",
                     steps: int = 20, seed: int = 0, held_out: float = 0.5, batch: int = 64, per_prompt: int = 1,
                     progress: bool = False, cache: Path | None = None) -> tuple[dict[str, float], torch.Tensor]:
    """Generate `per_prompt` videos for each of `caption_prompts(n)` and read them with the evaluator.

    Scores (with n, the sampler's NFE and the seconds spent sampling): digit_acc, direction_acc, both_acc (digit
    and direction right), the same on the held-out phrasings alone (held_out_*), identity_consistency and
    motion_error.
    Returns (scores, videos), the videos of one prompt next to each other.
    With `cache` (a folder for this model's videos), each batch is saved with the generator's state after it, and a
    run started again with the same arguments loads the batches it has and goes on: the same videos as one run.
    """
    from ..metrics.evaluator import score_readings

    prompts, labels = caption_prompts(n, seed, held_out)
    prompts = [p for p in prompts for _ in range(per_prompt)]
    labels = {k: v.repeat_interleave(per_prompt) for k, v in labels.items()}
    n = len(prompts)
    generator = torch.Generator(t2v.net.null_ids.device).manual_seed(seed)
    if cache is not None:
        cache = Path(cache) / f"{sampler}-{steps}-w{guidance:g}-n{n}-b{batch}-seed{seed}-h{held_out:g}-k{per_prompt}"
        cache.mkdir(parents=True, exist_ok=True)
    videos, nfe, seconds = [], 0, 0.0
    for i in range(0, n, batch):
        part = cache / f"{i}.pt" if cache is not None else None
        if part is not None and part.exists():
            saved = torch.load(part, weights_only=True)
            v, nfe, took = saved["videos"], int(saved["nfe"]), float(saved["seconds"])
            generator.set_state(saved["generator"])
        else:
            began = time.perf_counter()
            v, nfe = t2v(prompts[i:i + batch], guidance, sampler, steps, generator=generator, progress=progress,
                         return_nfe=True)
            took = time.perf_counter() - began
            if part is not None:
                torch.save({"videos": v.cpu(), "nfe": nfe, "seconds": took, "generator": generator.get_state()}, part)
        videos.append(v.cpu())
        seconds += took
    videos = torch.cat(videos)
    readings = evaluator.read(videos)
    scores = score_readings(readings, labels["digit"], labels["direction"])
    right = {"digit": readings["digit"] == labels["digit"], "direction": readings["direction"] == labels["direction"]}
    right["both"] = right["digit"] & right["direction"]
    held = labels["held_out"]
    scores["both_acc"] = right["both"].float().mean().item()
    if held.any():
        scores |= {f"held_out_{k}_acc": v[held].float().mean().item() for k, v in right.items()}
        scores["n_held_out"] = int(held.sum())
    return scores | {"guidance": guidance, "sampler": sampler, "steps": steps, "nfe": nfe, "seconds": seconds}, videos


def t2v_task(config):
    """The trainer's task: (videos, caption ids) batches, the v/ε-loss with caption dropout, prompt-driven sampling.

    With `diffusion.image_batch` = N > 0, each batch also holds N single frames of N other videos, each with its
    video's caption, learnt in image mode (temporal layers skipped): joint image–video training (VDM §3). A frame
    costs 1/T of a video, so the net sees many more digits per unit of compute; the videos teach the motion.
    """
    from ..diffusion import drop_condition
    from ..train import Task, make_diffusion, random_videos, step_generator

    diffusion = make_diffusion(config)
    p_uncond = config.diffusion.get("p_uncond", 0.1)
    image_batch = config.diffusion.get("image_batch", 0)
    data = MovingMNIST(**config.data)
    net = TextToVideoNet(**config.model)
    video_shape = (config.model.get("in_channels", 1), data.config.frames, data.config.size, data.config.size)

    def batch_fn(step: int):
        videos, captions, _ = random_videos(data, config, step)
        batch = (videos, net.tokenizer(captions, warn=False))
        if not image_batch:
            return batch
        clips, captions, _ = random_videos(data, config, step, n=image_batch, stream="images")
        frame = torch.randint(clips.shape[2], (image_batch,), generator=step_generator(config.seed, step, "frames"))
        images = clips[torch.arange(image_batch), :, frame][:, :, None]  # (N, C, T, H, W) -> (N, C, 1, H, W)
        return batch + (images, net.tokenizer(captions, warn=False))

    def caption_loss(model, x0, ids, generator, **mode):
        ids = drop_condition(ids, net.null_ids, p_uncond, generator)
        return diffusion.training_loss(lambda x, t, c: model(x, t, c, **mode), x0, cond=ids, generator=generator)

    def loss_fn(model, batch, generator):
        videos, ids, *images = batch
        loss = caption_loss(model, videos, ids, generator)
        return loss + caption_loss(model, *images, generator, image_mode=True) if images else loss

    def sample_fn(model, n, sampler="dpmpp", steps=20, eta=0.0, generator=None, progress=True, prompts=None,
                  guidance=3.0):
        if prompts is None:
            _, prompts, _ = MovingMNIST(n, split="test", seed=config.seed).batch(range(n))
        return TextToVideo(model, diffusion, video_shape)(prompts, guidance, sampler, steps, generator=generator,
                                                          progress=progress)

    return Task(net, loss_fn, batch_fn, sample_fn, diffusion, video_shape)
