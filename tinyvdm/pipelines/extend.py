"""Longer videos from a model of short ones, window by window (Video Diffusion Models, Ho et al. 2022, §3.1).

A model of W-frame windows, unconditional in frames, extends a video: each new window starts with the last O
frames of the video so far, x^a, and its other W − O frames, x^b, are sampled to agree with them. DDIM samples
the whole window z_t = (z_t^a, z_t^b); after every step z^a is put back as a draw of

    q(z_t^a | x^a) = N(α_t x^a, σ_t² I),      α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t)      (one ε for the whole chain)

and at the end x^a itself. With nothing else this is the *replacement method*: z^b only hears about x^a through
what the model makes of z^a, and the paper shows the result to be incoherent. *Reconstruction guidance* also
moves x̂^b towards the x^b that would make the model reconstruct x^a:

    E[x^b | z_t, x^a] = E[x^b | z_t] + (σ_t² / α_t) ∇_{z_t^b} log q(x^a | z_t),
                        q(x^a | z_t) ≈ N(x̂^a(z_t), σ_t²/α_t² I)

    x̃^b(z_t) = x̂^b(z_t) − (w_r α_t / 2) ∇_{z_t^b} ‖x^a − x̂^a(z_t)‖²

w_r = 1 is the Gaussian approximation; the paper finds larger weights better (it overestimates x^a's uncertainty).
With classifier-free guidance the gradient is the conditional model's (see `reconstruction_guidance`).

A text-to-video model is prompted with the direction the digit moves at the start of its clip, and a digit that
bounces moves another way in later windows: `prompt_fn` re-captions each window from its known overlap frames
(`direction_prompts`: the same digit, the direction `overlap_direction` reads, in the data's words).

    t2v = TextToVideo.load()
    first = t2v(prompts)                                                               # (B, 1, 8, 32, 32)
    long = extend(t2v.diffusion, t2v.net, first, length=32, overlap=4, method="guidance",
                  cond=t2v.net.tokenizer(prompts), guidance=t2v.best_guidance, null_cond=t2v.net.null_ids,
                  prompt_fn=direction_prompts(t2v.net.tokenizer, digits))                          # digits (B,)
"""
from __future__ import annotations

import torch

from ..data.moving_mnist import DIRECTION_OF_STEP, PHRASINGS, caption
from ..diffusion import GaussianDiffusion, classifier_free_guidance
from ..diffusion._batch import per_sample, randn
from .anomaly import centroids

METHODS = ("guidance", "replacement")
WEIGHT = 8.0  # w_r, the best of 1-64 on 10 videos of the shipped t2v model: boundary jump 1.1 px (replacement's 1.9)
TOL = 1.0  # pixels RMS from one bouncing motion over two windows: real videos read 0.3 at most, a 4-frame reversal 1.4


@torch.no_grad()
def extend(diffusion: GaussianDiffusion, model, video: torch.Tensor, length: int, overlap: int = 4,
           method: str = "guidance", weight: float = WEIGHT, steps: int = 50, cond=None, guidance: float = 1.0,
           null_cond=None, generator: torch.Generator | None = None, progress: bool = False,
           prompt_fn=None, eta: float = 0.0, resample: int = 1, candidates: int = 1, select=None) -> torch.Tensor:
    """video (B, C, W, H, W) -> (B, C, length, H, W) in windows of W frames (the model's; video is the first),
    each later one overlapping the video so far by its last `overlap` frames. `model(x_t, t, cond)` is any denoiser
    of the chain; with `guidance` ≠ 1 it is steered by classifier-free guidance towards `cond` (`null_cond`: none).
    `prompt_fn(overlap_frames, cond) -> cond`, if given, makes each later window's cond from its known frames
    (B, C, overlap, H, W) and the previous window's cond (e.g. `direction_prompts`). `eta`: DDIM's η for every
    window (0: deterministic; 1: fresh noise at every step, as the ancestral chain). `resample`: each DDIM step taken
    that many times, going back by the forward chain in between (RePaint; see `GaussianDiffusion.ddim_sample`).
    `candidates` K > 1: each window is drawn K times and the draw `select(windows, cond) -> (B·K,)` scores lowest
    is kept (e.g. `motion_surprise`)."""
    if video.ndim != 5:
        raise ValueError(f"expected a video batch (B, C, T, H, W), the first window, got {tuple(video.shape)}")
    window = video.shape[2]
    if not 1 <= overlap < window:
        raise ValueError(f"overlap must leave new frames in each window: 1 <= overlap < {window} (the window, the "
                         f"frames of video {tuple(video.shape)}), got {overlap}")
    if candidates < 1 or (candidates > 1 and select is None):
        raise ValueError(f"candidates must be >= 1, and > 1 needs select, the score that picks one; got "
                         f"candidates={candidates}, select={select!r}")
    mask = torch.arange(window, device=video.device) < overlap
    out = video
    while out.shape[2] < length:
        known = torch.cat([out[:, :, -overlap:], torch.zeros_like(video[:, :, overlap:])], 2)
        if prompt_fn is not None:
            cond = prompt_fn(out[:, :, -overlap:], cond)
        if candidates == 1:
            new = sample_window(diffusion, model, known, mask, method, weight, steps, cond, guidance, null_cond,
                                generator, progress, eta, resample)
        else:
            each = lambda a: None if a is None else a.repeat_interleave(candidates, 0)  # (B·K, ...): K draws per video
            new = sample_window(diffusion, model, each(known), mask, method, weight, steps, each(cond), guidance,
                                null_cond, generator, progress, eta, resample)
            new = new.unflatten(0, (-1, candidates))  # (B, K, C, T, H, W)
            best = select(new.flatten(0, 1), each(cond)).view(-1, candidates).argmin(1)
            new = new[torch.arange(len(new), device=new.device), best]
        out = torch.cat([out, new[:, :, overlap:]], 2)
    return out[:, :, :length]


def sample_window(diffusion: GaussianDiffusion, model, known: torch.Tensor, mask: torch.Tensor,
                  method: str = "guidance", weight: float = WEIGHT, steps: int = 50, cond=None, guidance: float = 1.0,
                  null_cond=None, generator: torch.Generator | None = None, progress: bool = False,
                  eta: float = 0.0, resample: int = 1) -> torch.Tensor:
    """One window (B, C, T, H, W) by DDIM (η = `eta`, each step taken `resample` times) whose frames `mask` (T,) are
    `known`'s, by replacement or guidance."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if known.ndim != 5 or mask.shape != (known.shape[2],) or mask.dtype != torch.bool:
        raise ValueError(f"expected known frames (B, C, T, H, W) and a bool mask (T,) of their T frames, got "
                         f"known {tuple(known.shape)} and mask {mask.dtype} {tuple(mask.shape)}")
    if guidance != 1.0 and null_cond is None:
        raise ValueError("guidance needs null_cond, the condition that means 'no condition'")
    m = mask.view(1, 1, -1, 1, 1)
    if method == "guidance":
        model = reconstruction_guidance(diffusion, model, known, m, weight, guidance, null_cond)
    elif guidance != 1.0:
        model = classifier_free_guidance(model, guidance, null_cond)
    noise = randn(known.shape, generator, known.device, known.dtype)  # the ε of q(z_t^a | x^a) at every step
    put_back = diffusion.replacement(known, m, noise)
    x_T = put_back(diffusion.num_steps - 1, randn(known.shape, generator, known.device, known.dtype))
    return diffusion.ddim_sample(model, known.shape, steps, eta, cond=cond, x_T=x_T, generator=generator,
                                 progress=progress, callback=put_back, resample=resample)


def reconstruction_guidance(diffusion: GaussianDiffusion, model, known: torch.Tensor, mask: torch.Tensor,
                            weight: float = WEIGHT, guidance: float = 1.0, null_cond=None):
    """The denoiser whose x_0 estimate is x̃^b = x̂^b − (w_r α_t / 2) ∇_{z_t^b} ‖x^a − x̂^a(z_t)‖² on the frames
    outside `mask` (broadcast to `known`), x̂^a on the others; it returns what `model` predicts (ε, x_0 or v).

    x̂ is the model's unclipped estimate: a clamp would zero the gradient wherever x̂ overshoots the data's range.
    With classifier-free guidance (`guidance` ≠ 1 and a cond), x̂ is the guided model's, and the gradient the
    conditional model's: the guided x̂ = x̂_∅ + w (x̂_c − x̂_∅) has its Jacobian, the posterior covariance the
    derivation rests on, scaled up about w times (by 10 at the shipped model's w = 7).
    """
    def guided(z_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        with torch.enable_grad():
            z = z_t.detach().requires_grad_()
            x0 = diffusion.predict_x0(model(z, t, cond), z, t)
            (grad,) = torch.autograd.grad(((known - x0) ** 2 * mask).sum(), z)
        if guidance != 1.0 and cond is not None:
            x0 = diffusion.predict_x0(classifier_free_guidance(model, guidance, null_cond)(z_t, t, cond), z_t, t)
        alpha = per_sample(diffusion.sqrt_alpha_bar[t.cpu()], z_t)
        sigma = per_sample(diffusion.sqrt_one_minus_alpha_bar[t.cpu()], z_t)
        x0 = torch.where(mask, x0, x0 - weight * alpha / 2 * grad).detach()
        return diffusion.target(x0, (z_t - alpha * x0) / sigma, t)
    return guided


def motion_surprise(diffusion: GaussianDiffusion, net, levels: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6),
                    draws: int = 2, generator: torch.Generator | None = None):
    """`extend`'s select for a net trained on videos and images (`image_mode`): windows x (B, C, T, H, W) -> (B,)

        Σ_{t, ε} ‖x̂_0^video(z_t) − x‖² / Σ_{t, ε} ‖x̂_0^image(z_t) − x‖²,   z_t = α_t x + σ_t ε,  t/N ∈ `levels`

    the video model's denoising error (a proxy for −log p(x), DDPM's bound) over that of the same net seeing each
    frame alone: what the frames look like cancels, what is left is how much the model is surprised by the motion.
    A window whose digit turns back or jumps reads high (the anomaly detector's reconstruction score, turned on the
    model's own draws). The prompt is left out (cond ∅): the score judges the motion, not the caption."""
    def select(x: torch.Tensor, cond=None) -> torch.Tensor:
        video = image = 0
        for level in levels:
            t = torch.full((len(x),), min(round(level * diffusion.num_steps), diffusion.num_steps - 1), device=x.device)
            for _ in range(draws):
                z = diffusion.q_sample(x, t, randn(x.shape, generator, x.device, x.dtype))
                video = video + ((diffusion.predict_x0(net(z, t), z, t) - x) ** 2).flatten(1).mean(1)
                image = image + ((diffusion.predict_x0(net(z, t, image_mode=True), z, t) - x) ** 2).flatten(1).mean(1)
        return video / image
    return select


def direction_prompts(tokenizer, digits, template: str = PHRASINGS[0], digit_size: int = 14):
    """`extend`'s prompt_fn for a caption model: each window is captioned as the data would caption its clip,
    `template` with the video's digit `digits` (B,) and the direction `overlap_direction` reads from the overlap.
    A video whose digit is read as still keeps the previous window's cond."""
    digits = torch.as_tensor(digits).reshape(-1).tolist()

    def prompt_fn(frames: torch.Tensor, cond):
        if len(digits) != len(frames):
            raise ValueError(f"expected one digit per video, {len(frames)}, got {len(digits)} digits")
        directions = overlap_direction(frames, digit_size)
        ids = tokenizer([caption([d], [r], template) for d, r in zip(digits, directions.clamp(min=0).tolist())])
        ids = ids.to(frames.device)
        return ids if cond is None else torch.where((directions >= 0).to(frames.device)[:, None], ids, cond)
    return prompt_fn


def overlap_direction(frames: torch.Tensor, digit_size: int = 14) -> torch.Tensor:
    """The direction (B,) (index into DIRECTIONS, −1: no motion) a digit moves at the first of `frames`
    (B, C, O ≥ 2, H, W): what the data's caption of a clip starting there would say.

    Per axis, the steps d_t = c_{t+1} − c_t of the digit's centroid c_t; a step under half the largest one (over
    both axes and all steps: the speed) is a stall. The direction is the sign of the first full step, reversed when
    stalls before it leave the digit by a wall it moves away from: it was moving into the wall and bounced within a
    step (a bounce after the first step keeps the clip's initial direction, as a caption does). O = 2 sees one step,
    so a stall there reads as a still axis.
    """
    if frames.ndim != 5 or frames.shape[2] < 2:
        raise ValueError(f"expected overlap frames (B, C, O, H, W) with O >= 2, got {tuple(frames.shape)}")
    c = centroids(frames).cpu()  # (B, O, 2) (y, x) pixels
    d = c[:, 1:] - c[:, :-1]  # (B, O − 1, 2)
    speed = d.abs().amax((1, 2))  # (B,)
    full = d.abs() >= speed[:, None, None] / 2
    first = full.float().argmax(1)  # (B, 2): each axis's first full step
    sign = d.gather(1, first[:, None]).squeeze(1).sign()
    at = c.gather(1, first[:, None]).squeeze(1)  # where that step starts
    lo, hi = (digit_size - 1) / 2, frames.shape[-1] - 1 - (digit_size - 1) / 2  # the walls of the centre
    by_wall = torch.where(sign > 0, at - lo, hi - at) <= speed[:, None] + 1  # the centroid is the centre to ~1 px
    sign = torch.where((first > 0) & by_wall, -sign, sign)
    sign = torch.where(full.any(1) & (speed[:, None] > 0), sign, 0).long()
    return torch.from_numpy(DIRECTION_OF_STEP)[(sign[:, 0] + 1) * 3 + sign[:, 1] + 1]


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """The first frame of each window `extend` makes for `length` frames: 0, W − O, 2(W − O), …"""
    return list(range(0, max(length - overlap, 1), window - overlap))


def boundary_scores(positions: torch.Tensor, window: int, overlap: int, tol: float = TOL,
                    digit_size: int = 14) -> dict[str, torch.Tensor]:
    """How the tracked digit centres c_t (B, T, 2) (`Evaluator.read(videos)["positions"]`, pixels of 32 × 32 frames)
    carry across the K boundaries of `extend`'s windows; boundary k is window k's first new frame b = s_k + O.

    consistent (B, K): one bouncing constant-velocity motion (`fit_bouncing_motion`) fits windows k − 1 and k together
    to within `tol` pixels RMS (span_error (B, K): that RMS): the digit keeps its direction and speed across the
    boundary, bounces aside.
    direction_kept (B, K): the lenient reading, direction only. Window k − 1's fitted motion, continued past b, says
    which way (±, bounces followed) each axis steps over window k's new frames; the digit keeps its direction if on
    every axis that moves its steps there, signed by that way, average above 0, and on an axis it leaves still they
    average under half its speed. A turn back or aside breaks it; a change of speed or a wobble does not.
    turn (B, K): ‖a_t‖ = ‖c_{t+1} − 2 c_t + c_{t−1}‖ over the two steps around b (t = b − 1, b): the jump of the
    centre's velocity; turn_within (B,): ‖a_t‖ at every other frame (0 for constant velocity; bounces turn too).
    """
    from ..metrics.evaluator import fit_bouncing_motion

    B, T, _ = positions.shape
    starts = window_starts(T, window, overlap)
    if len(starts) < 2 or starts[1] + overlap > T - 2:
        raise ValueError(f"expected positions (B, T, 2) with at least one window boundary and two frames after it "
                         f"(T >= {window + 2} for window={window}), got {tuple(positions.shape)}")
    firsts = [s + overlap for s in starts[1:] if s + overlap <= T - 2]
    spans = [positions[:, s:s + window + (window - overlap)] for s in starts[:len(firsts)]]
    error = torch.stack([fit_bouncing_motion(p, digit_size)["error"] for p in spans], 1)
    kept = []
    for s, b in zip(starts, firsts):  # window k − 1 = frames s … b − 1
        new = min(window - overlap, T - b)
        before = fit_bouncing_motion(positions[:, s:b], digit_size, horizon=new)
        way = before["fit"][:, window - 1:].diff(dim=1).sign()  # (B, new, 2): its steps from b − 1 on
        step = positions[:, b - 1:b + new].diff(dim=1)
        moving = way.abs().sum(1)  # (B, 2): the steps each axis moves
        along = (step * way).sum(1) / moving.clamp(min=1)
        kept.append(torch.where(moving > 0, along > 0, step.mean(1).abs() < before["speed"][:, None] / 2).all(1))
    a = (positions[:, 2:] - 2 * positions[:, 1:-1] + positions[:, :-2]).norm(dim=-1)  # (B, T − 2): a_t at t = 1 …
    inside = torch.ones(T - 2, dtype=torch.bool)
    for b in firsts:
        inside[b - 2:b] = False
    return {"consistent": error <= tol, "span_error": error, "direction_kept": torch.stack(kept, 1),
            "turn": torch.stack([a[:, b - 2:b].mean(1) for b in firsts], 1),
            "turn_within": a[:, inside].mean(1)}
