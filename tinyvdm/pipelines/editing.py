"""Training-free video editing with a text-to-video diffusion model: SDEdit, DDIM inversion with attention
injection, and frame-by-frame editing with cross-frame attention.

SDEdit (Meng et al. 2022) noises the source video part of the way and lets the model denoise it under the
target prompt; the strength s trades fidelity to the source for the edit:

    x_{t0} = √ᾱ_{t0} x_src + √(1 − ᾱ_{t0}) ε   (DDPM eq. 4),   t0 = sN − 1,   then DDIM t0 → 0 under c_tgt.

Masked (m = 1 where the edit may change the video), the outside follows the source's own noised path, put
back after every step: x_t ← m ⊙ x_t + (1 − m) ⊙ (√ᾱ_t x_src + √(1 − ᾱ_t) ε), with the same ε, so the
outside ends as x_src exactly.

Plug-and-Play (Tumanyan et al. 2023) / FateZero (Qi et al. 2023): DDIM inversion under the source prompt gives
x_T with DDIM(x_T, c_src) ≈ x_src. Two branches start from x_T: the source branch under c_src rebuilds x_src,
the target branch runs under c_tgt, and while t > τ every self- and temporal-attention layer of the target
branch computes softmax(q_src k_srcᵀ / √d) v_tgt: the source's attention maps (where each pixel looks, which
frames it follows) with the target's values. The noisy steps t > τ lay out where the digit is and how it
moves; the steps below τ are free to draw the new one.

Text2Video-Zero (Khachatryan et al. 2023) / Tune-A-Video (Wu et al. 2023): the net run on every frame as an
image (`image_mode`, temporal layers skipped) edits each frame on its own, and the frames drift apart.
Cross-frame attention gives frame i the keys and values of frames 0 and i − 1,

    Q = W_q z_i,   K = W_k [z_0, z_{i−1}],   V = W_v [z_0, z_{i−1}]   (Tune-A-Video eq. 3),

so every frame draws its appearance from frame 0. Text2Video-Zero's other ingredient is the noise: one ε for the
whole video, each frame's copy translated with the motion, ε_i = S_{δ_i} ε_0 (its "motion dynamics in latent
codes"); here δ_i is the source digit's displacement from frame 0 (`warped_noise`), so every frame is noised the
same way around its digit.

    editor = VideoEditor(TextToVideo.load())
    edited = editor.sdedit(videos, "the digit 8 moves left", strength=0.6)
    edited = editor.sdedit(videos, "the digit 8 moves left", strength=0.6, mode="cross_frame")
    edited = editor.sdedit(videos, "the digit 8 moves left", strength=0.6, mode="per_frame", warp_noise=True)
    edited, rebuilt = editor.inject(videos, source_prompts, target_prompts, tau=600)

Measured against Moving MNIST's truth (`edit_targets`, `edit_scores`): whether the evaluator reads the target digit
and direction, how far the digit strays from the trajectory it should follow, and how much it flickers.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from functools import partial

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from ..data import caption
from ..data.moving_mnist import STEPS
from ..diffusion import GaussianDiffusion, classifier_free_guidance
from ..diffusion._batch import check_steps, randn
from ..models.attention import Attention, SpatialAttention, _sparse_causal
from .anomaly import centroids

MODES = ("video", "per_frame", "cross_frame")
EDITS = ("digit", "direction", "both")


@torch.inference_mode()
def sdedit(diffusion: GaussianDiffusion, model, source: torch.Tensor, strength: float, cond=None, steps: int = 20, *,
           mask: torch.Tensor | None = None, noise: torch.Tensor | None = None,
           generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """SDEdit: the source noised to t0 = strength·N − 1 (by `noise`, the source's shape; default fresh N(0, I)),
    then DDIM to the data under `cond`.

    `steps` are the DDIM steps of a whole run from noise; SDEdit runs round(strength·steps) of them (at least one).
    With a `mask` (broadcastable to the source, 1 = edit), the rest is put back after every step.
    """
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], the fraction of the chain the source is noised through, "
                         f"got {strength}")
    check_steps(steps)
    if mask is not None and (mask.ndim > source.ndim
                             or any(m not in (1, n) for m, n in zip(mask.shape[::-1], source.shape[::-1]))):
        raise ValueError(f"expected a mask broadcastable to the source {tuple(source.shape)}, got {tuple(mask.shape)}")
    mask = None if mask is None else mask.to(source)
    t0 = max(round(strength * diffusion.num_steps) - 1, 0)
    if noise is not None and noise.shape != source.shape:
        raise ValueError(f"expected noise of the source's shape {tuple(source.shape)}, got {tuple(noise.shape)}")
    eps = randn(source.shape, generator, source.device, source.dtype) if noise is None else noise.to(source)
    noised = lambda t: diffusion.q_sample(source, torch.full((len(source),), int(t), device=source.device), eps)

    def put_back(t: int, x: torch.Tensor) -> torch.Tensor:
        return mask * x + (1 - mask) * (source if t < 0 else noised(t))

    return diffusion.ddim_sample(model, source.shape, max(1, round(strength * steps)), cond=cond, x_T=noised(t0),
                                 t_start=t0, callback=put_back if mask is not None else None, progress=progress)


@torch.inference_mode()
def reconstruct(diffusion: GaussianDiffusion, model, source: torch.Tensor, cond=None, steps: int = 20, *,
                fixed_point_iters: int = 0) -> torch.Tensor:
    """DDIM(DDIM⁻¹(x_src)): inversion and regeneration with no edit, x_src again up to the inversion's error."""
    x_T = diffusion.ddim_invert(model, source, steps, cond, fixed_point_iters=fixed_point_iters)
    return diffusion.ddim_sample(model, source.shape, steps, cond=cond, x_T=x_T)


@torch.inference_mode()
def inject_attention(diffusion: GaussianDiffusion, net, source: torch.Tensor, source_cond, target_cond, tau: int,
                     steps: int = 20, *, guidance: float = 1.0, null_cond=None, fixed_point_iters: int = 0,
                     progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """DDIM inversion under `source_cond`, then the source and target branches from x_T, the target one taking the
    source's q and k in every self- and temporal-attention layer of `net` at steps t > tau.

    tau = N − 1 injects nothing, tau = −1 (the data) at every step. The target branch is guided with `guidance`
    (classifier-free, `null_cond` = no prompt), the source branch and the inversion are not. Returns (edited, the
    source branch's reconstruction).
    """
    if isinstance(tau, bool) or not isinstance(tau, int) or not -1 <= tau < diffusion.num_steps:
        raise ValueError(f"tau must be a step of the schedule in [-1, {diffusion.num_steps - 1}] (inject while "
                         f"t > tau), got {tau!r}")
    target = classifier_free_guidance(net, guidance, null_cond) if guidance != 1.0 else net
    layers = [m for m in net.modules() if isinstance(m, Attention) and m.self_attention]
    cache = {}

    def record(i, q, k, v):
        cache[i] = q, k
        return q, k, v

    def inject(i, q, k, v):
        q_src, k_src = cache[i]
        copies = len(q) // len(q_src)  # a guided call is one batch (c_tgt, ∅): both get the source's maps
        return (repeat(q_src, "n h l d -> (c n) h l d", c=copies),
                repeat(k_src, "n h l d -> (c n) h l d", c=copies), v)

    def both_branches(x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        x_src, x_tgt = x.chunk(2)  # (2B, …) -> (B, …) twice
        injecting = int(t[0]) > tau
        with qkv_hooks(layers, record) if injecting else nullcontext():
            out_src = net(x_src, t[:len(x_src)], source_cond)
        with qkv_hooks(layers, inject) if injecting else nullcontext():
            out_tgt = target(x_tgt, t[len(x_src):], target_cond)
        return torch.cat([out_src, out_tgt])

    x_T = diffusion.ddim_invert(net, source, steps, source_cond, fixed_point_iters=fixed_point_iters, progress=progress)
    x = diffusion.ddim_sample(both_branches, (2 * len(source), *source.shape[1:]), steps,
                              x_T=torch.cat([x_T, x_T]), progress=progress)
    rebuilt, edited = x.chunk(2)
    return edited, rebuilt


def image_mode_denoiser(net, cross_frame: bool = False):
    """`net` run on every frame as an image (`image_mode=True`); with `cross_frame`, the spatial attention of frame i
    takes its keys and values from frames 0 and i − 1 instead of frame i."""
    layers = [m.attn for m in net.modules() if isinstance(m, SpatialAttention)]

    def model(x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        if not cross_frame:
            return net(x_t, t, cond, image_mode=True)
        gather = _sparse_causal(x_t.shape[2])
        with qkv_hooks(layers, lambda i, q, k, v: (q, gather(k), gather(v))):
            return net(x_t, t, cond, image_mode=True)
    return model


def warped_noise(videos: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """ε (B, C, T, H, W) for `videos`: one draw ε_0 per video, frame i's a copy moved with the content,

        ε_i = S_{δ_i} ε_0,   δ_i = round(c_i − c_0)   (a circular shift; c_t the intensity centroid of frame t)

    Text2Video-Zero translates its initial noise with the camera; here the shift follows the source's one digit."""
    B, C, T, H, W = videos.shape
    eps = randn((B, C, H, W), generator, videos.device, videos.dtype)
    c = centroids(videos)
    shifts = (c - c[:, :1]).round().long().tolist()  # (B, T, 2) pixels (y, x)
    return torch.stack([torch.stack([eps[b].roll(tuple(shifts[b][t]), (-2, -1)) for t in range(T)], 1)
                        for b in range(B)])


class VideoEditor:
    """Every method above on a `TextToVideo` model: videos of its size and prompts in, edited videos out.

    mode: "video" runs the video net; "per_frame" the net on each frame as an image; "cross_frame" the same with
    cross-frame keys and values. Guidance defaults to the model's best scale.
    """

    def __init__(self, t2v, guidance: float | None = None):
        self.t2v = t2v
        self.guidance = t2v.best_guidance if guidance is None else guidance

    def sdedit(self, videos: torch.Tensor, prompts: str | list[str], strength: float, steps: int = 20, *,
               mode: str = "video", mask: torch.Tensor | None = None, warp_noise: bool = False, seed: int = 0,
               progress: bool = False) -> torch.Tensor:
        """`sdedit` under `prompts`; `warp_noise`: the noise of `warped_noise`, not independent in every frame."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        videos, ids = self._check(videos, prompts)
        net = self.t2v.net
        model = net if mode == "video" else image_mode_denoiser(net, cross_frame=mode == "cross_frame")
        guided = classifier_free_guidance(model, self.guidance, net.null_ids)
        generator = torch.Generator(videos.device).manual_seed(seed)
        noise = warped_noise(videos, generator) if warp_noise else None
        edited = sdedit(self.t2v.diffusion, guided, videos, strength, ids, steps, mask=mask, noise=noise,
                        generator=generator, progress=progress)
        return edited.clamp(-1, 1)

    def inject(self, videos: torch.Tensor, source_prompts: str | list[str], target_prompts: str | list[str],
               tau: int, steps: int = 20, *, fixed_point_iters: int = 0,
               progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(edited, reconstruction): see `inject_attention`."""
        videos, source_ids = self._check(videos, source_prompts)
        _, target_ids = self._check(videos, target_prompts)
        edited, rebuilt = inject_attention(self.t2v.diffusion, self.t2v.net, videos, source_ids, target_ids, tau,
                                           steps, guidance=self.guidance, null_cond=self.t2v.net.null_ids,
                                           fixed_point_iters=fixed_point_iters, progress=progress)
        return edited.clamp(-1, 1), rebuilt.clamp(-1, 1)

    def _check(self, videos: torch.Tensor, prompts: str | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Videos on the model's device and the token ids of one prompt per video (a string: the same for all)."""
        shape = self.t2v.video_shape
        if not isinstance(videos, torch.Tensor) or videos.ndim != 5 or tuple(videos.shape[1:]) != shape:
            got = tuple(videos.shape) if isinstance(videos, torch.Tensor) else type(videos).__name__
            raise ValueError(f"expected source videos (B, {', '.join(map(str, shape))}), the size the model was "
                             f"trained on, got {got}")
        prompts = [prompts] * len(videos) if isinstance(prompts, str) else list(prompts)
        if len(prompts) != len(videos):
            raise ValueError(f"expected one prompt per video ({len(videos)}), got {len(prompts)} prompts")
        device = self.t2v.net.null_ids.device
        return videos.to(device), self.t2v.net.tokenizer(prompts).to(device)


def edit_targets(labels: dict, edit: str, config, seed: int = 0) -> dict[str, torch.Tensor]:
    """What each edited video should show: digit (B,), direction (B,) and positions (B, T, 2) (y, x).

    `labels` of a Moving MNIST batch of one digit per video, `config` its `MovingMNISTConfig`. "digit": another digit
    (drawn per video from `seed`), the same motion; "direction": the same digit from the same start moving the
    opposite way, bouncing as the data does; "both": both changes.
    """
    from ..metrics.evaluator import fit_bouncing_motion

    if edit not in EDITS:
        raise ValueError(f"edit must be one of {EDITS}, got {edit!r}")
    digit, direction, positions = labels["digits"][:, 0], labels["direction"][:, 0], labels["positions"][:, :, 0]
    if edit in ("digit", "both"):
        shift = torch.randint(1, 10, digit.shape, generator=torch.Generator().manual_seed(seed))
        digit = (digit + shift) % 10
    if edit in ("direction", "both"):
        c = config
        lo, room = (c.digit_size - 1) / 2, c.size - c.digit_size
        step = torch.tensor(STEPS)[(direction + 4) % 8] * c.speed  # (B, 2) the opposite way
        corner = positions[:, :1] - lo + step[:, None] * torch.arange(c.frames)[:, None]  # (B, T, 2)
        positions = lo + room - (room - corner.remainder(2 * room)).abs()  # bouncing, as the data does
        direction = fit_bouncing_motion(positions, c.digit_size, c.size)["direction"]  # the way it visibly goes
    return {"digit": digit, "direction": direction, "positions": positions}


def edit_prompts(digits: torch.Tensor, directions: torch.Tensor) -> list[str]:
    """"the digit 3 moves left" for each (digit, direction), in the first phrasing."""
    return [caption([d], [r]) for d, r in zip(digits.tolist(), directions.tolist())]


def flicker(videos: torch.Tensor, positions: torch.Tensor, size: int) -> torch.Tensor:
    """Mean |crop_{t+1} − crop_t| (B,) of size×size crops centred on `positions` (B, T, 2) of videos (B, 1, T, H, W):
    how much the digit's appearance changes from frame to frame once its motion is taken out."""
    B, _, T, H, W = videos.shape
    frames = F.pad(videos[:, 0], (size, size, size, size), value=-1)  # (B, T, H + 2s, W + 2s), background around
    corner = ((positions - (size - 1) / 2).round().long() + size).clamp(0, H + size)  # (B, T, 2) in the padded frame
    i = torch.arange(size)
    rows = rearrange(corner[..., 0, None] + i, "b t r -> b t r 1")
    cols = rearrange(corner[..., 1, None] + i, "b t c -> b t 1 c")
    video, frame = torch.arange(B)[:, None, None, None], torch.arange(T)[None, :, None, None]
    crops = frames[video, frame, rows, cols]  # (B, T, s, s)
    return (crops[:, 1:] - crops[:, :-1]).abs().mean((1, 2, 3))


def edit_scores(evaluator, videos: torch.Tensor, target: dict, digit_size: int, seconds: float = 0.0) -> dict:
    """Means over edited videos, read by the evaluator against `edit_targets`:

    edit_success (target digit and direction both read), digit_acc, direction_acc, traj_error (mean distance in
    pixels of the read digit centres from the target positions), within_2px (share of videos with traj_error ≤ 2),
    identity (share of frames showing the video's digit), flicker (see `flicker`, at the read centres) and
    seconds per video (of `seconds` for them all).
    """
    from ..metrics.evaluator import score_readings

    readings = evaluator.read(videos)
    scores = score_readings(readings, target["digit"], target["direction"], target["positions"])
    distance = (readings["positions"] - target["positions"]).norm(dim=-1).mean(1)  # (B,) pixels
    right = (readings["digit"] == target["digit"]) & (readings["direction"] == target["direction"])
    return {"edit_success": right.float().mean().item(), "digit_acc": scores["digit_acc"],
            "direction_acc": scores["direction_acc"], "traj_error": distance.mean().item(),
            "within_2px": (distance <= 2).float().mean().item(), "identity": scores["identity_consistency"],
            "flicker": flicker(videos, readings["positions"], digit_size).mean().item(),
            "seconds": seconds / len(videos)}


@contextmanager
def qkv_hooks(layers: list[Attention], hook):
    """Every layer i runs `hook(i, q, k, v)` on its attention inputs inside the block (see `Attention.qkv_hook`)."""
    for i, layer in enumerate(layers):
        layer.qkv_hook = partial(hook, i)
    try:
        yield
    finally:
        for layer in layers:
            layer.qkv_hook = None
