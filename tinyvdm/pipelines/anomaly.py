"""Video anomaly detection: frame-level scores from a diffusion model of normal videos, two baselines, AUROC / AP.

Partial-diffusion reconstruction (AnoDDPM, Wyatt et al. 2022): noise the video x_0 part of the way,

    x_{t_s} = √ᾱ_{t_s} x_0 + √(1 − ᾱ_{t_s}) ε   (DDPM eq. 4),

and denoise it back with deterministic DDIM from t_s to x̂_0. A model of normal videos pulls what it does not
know towards what it does, so the frame error, averaged over K noise draws ε⁽ᵏ⁾,

    s_t = (1/K) Σ_k mean_{c,h,w} (x̂_0⁽ᵏ⁾ − x_0)²_t,

is large on abnormal frames. t_s is the dial: near 0 the noise is small and any video comes back (even an
abnormal one); near N − 1 the video is forgotten and even a normal one comes back different.

Future prediction: to score frame t, the frames before it are known. A frame-conditioned model (MCVD,
`tinyvdm.pipelines.frames`; the shipped detector) sees them as its context; any other video model gets them by the
replacement method (VDM, Ho et al. 2022, §3.1): noise the video to t_s and run DDIM back, putting the known frames
back at every step as their own noising to the current step, q(x_τ | x_0). The model fills in frames t, … in
agreement with the past, and s_t is frame t's error (mean, or min, over K draws). With t_s = N − 1 frame t is
predicted from the past alone; a smaller t_s also keeps part of frame t itself. A frame that does not follow from
its past — a jump, a stop, a new digit, a square — is predicted wrong. But only at first: once the past holds the
stopped or changed digit, the model carries it on, and the frames after the onset look normal again. A forecast
(from_first) predicts every frame from the first few alone, which an anomaly never touches when it starts later, so
the whole span stays wrong; the price is that normal frames far ahead are foretold less exactly.

Two baselines that know nothing but the pixels:
    frame difference      s_t = mean |x_t − x_{t−1}|
    constant velocity     track the digit by its intensity-weighted centroid c_t, predict
                          ĉ_t = c_{t−1} + (c_{t−1} − c_{t−2}) reflected off the walls the digit's centre cannot
                          pass, s_t = ‖ĉ_t − c_t‖ (0 for a normal digit away from the walls)
Frames with too little past for a score (the first, or the first two) take the first score there is.

`zscore` (per video) and `smooth` (a moving average over frames) post-process any score; `evaluate` gives
frame-level AUROC and AP per anomaly type of `tinyvdm.data.anomalies`.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat

from ..diffusion import GaussianDiffusion
from ..diffusion._batch import randn
from ..metrics.ranking import auroc, average_precision
from .frames import conditioned

# the course's detector: the frames model of the "anomaly" preset, trained on normal videos only (no 9s); its card
# says how and what it scores
CHECKPOINT = Path(__file__).resolve().parents[2] / "data" / "checkpoints" / "anomaly.pt"


@torch.inference_mode()
def reconstruction_scores(diffusion: GaussianDiffusion, model, videos: torch.Tensor, t_start: int, steps: int = 10,
                          draws: int = 1, cond=None, generator: torch.Generator | None = None,
                          return_frames: bool = False):
    """s (B, T): each frame's squared error after noising to step `t_start` and `steps` DDIM steps back,
    mean of `draws`.

    `model(x_t, t, cond)` is any denoiser of the chain; `cond` (B, …) is repeated for the draws (a caption-conditioned
    model runs unconditionally with cond=None, or with the videos' captions; a frame-conditioned one with no frame
    known). return_frames: also x̂_0 (B, C, T, H, W) of the first draw.
    """
    _check_videos(videos)
    if draws < 1:
        raise ValueError(f"draws must be a positive number of noise draws, got {draws}")
    x0 = repeat(videos, "b ... -> (k b) ...", k=draws)
    cond = None if cond is None else repeat(cond, "b ... -> (k b) ...", k=draws)
    if getattr(model, "ctx_channels", None) == 2:  # a frame-conditioned model with no frame known: unconditional
        model = conditioned(model, x0, x0.new_zeros(len(x0), 1, x0.shape[2], 1, 1, dtype=torch.bool))
    noise = randn(x0.shape, generator, x0.device, x0.dtype)
    x_t = diffusion.q_sample(x0, torch.full((len(x0),), t_start, device=x0.device), noise)
    x0_hat = diffusion.ddim_sample(model, x0.shape, min(steps, t_start + 1), cond=cond, x_T=x_t, t_start=t_start)
    scores = reduce((x0_hat - x0) ** 2, "(k b) c t h w -> b t", "mean", k=draws)
    return (scores, x0_hat[:len(videos)]) if return_frames else scores


@torch.inference_mode()
def prediction_scores(diffusion: GaussianDiffusion, model, videos: torch.Tensor, t_start: int | None = None,
                      steps: int = 10, draws: int = 1, cond=None, context: int = 2, reduction: str = "mean",
                      from_first: bool = False, generator: torch.Generator | None = None,
                      return_frames: bool = False):
    """s (B, T): frame t's squared error when predicted from frames [0, t) (replacement method), mean or min of `draws`.

    Frames t ≥ `context` are scored, one DDIM run each (B·(T − context)·draws videos in one batch); earlier frames,
    with too little past to say where the digit goes, take the first score. t_start=None is N − 1 (pure prediction).
    from_first: forecast instead, every frame t ≥ `context` from frames [0, context) alone, in one run per video: an
    anomaly the past has absorbed (a digit that stopped, or changed, some frames ago) still differs from what the first
    frames foretell, at the price of a forecast that is less sure the further it looks.
    return_frames: also the predictions (B, C, T, H, W) of the first draw (frames before `context`: the input's).
    """
    _check_videos(videos)
    B, T = videos.shape[0], videos.shape[2]
    t_start = diffusion.num_steps - 1 if t_start is None else t_start
    if not 1 <= context < T:
        raise ValueError(f"context must leave a frame to predict: 1 <= context < T = {T}, got {context}")
    if draws < 1 or reduction not in ("mean", "min"):
        raise ValueError(f"expected draws >= 1 and reduction 'mean' or 'min', got draws={draws}, {reduction!r}")
    frames = torch.arange(T, device=videos.device)
    # run p knows frames [0, ends[p]) and is scored on targets[p]: each frame its own run, or one run for all
    targets = frames[context:, None] if not from_first else frames[None, context:]  # (P, frames a run scores)
    ends = targets[:, 0]
    P = len(targets)
    x0 = repeat(videos, "b c t h w -> (k p b) c t h w", k=draws, p=P)
    known = repeat(frames < ends[:, None], "p t -> (k p b) 1 t 1 1", k=draws, b=B)
    cond = None if cond is None else repeat(cond, "b ... -> (k p b) ...", k=draws, p=P)
    noise = randn(x0.shape, generator, x0.device, x0.dtype)
    if getattr(model, "ctx_channels", None) == 2:  # a frame-conditioned model (MCVD) sees the past as its context
        model, put_back = conditioned(model, x0, known), None
    else:  # the replacement method: the known frames, noised to each step with the same ε
        put_back = diffusion.replacement(x0, known, noise)
    x_T = diffusion.q_sample(x0, torch.full((len(x0),), t_start, device=x0.device), noise)
    x0_hat = diffusion.ddim_sample(model, x0.shape, min(steps, t_start + 1), cond=cond, x_T=x_T, t_start=t_start,
                                   callback=put_back)
    error = reduce((x0_hat - x0) ** 2, "(k p b) c t h w -> k b p t", "mean", k=draws, p=P)
    error = error[:, :, torch.arange(P)[:, None], targets].flatten(2)  # (K, B, T − context): each run's own frames
    error = error.mean(0) if reduction == "mean" else error.amin(0)
    scores = torch.cat([error[:, :1].expand(B, context), error], 1)
    if not return_frames:
        return scores
    runs = rearrange(x0_hat[:P * B], "(p b) c t h w -> b c p t h w", p=P)
    predicted = runs[:, :, torch.arange(P)[:, None], targets].flatten(2, 3)  # (B, C, T − context, H, W)
    return scores, torch.cat([videos[:, :, :context], predicted], 2)


def frame_difference_scores(videos: torch.Tensor) -> torch.Tensor:
    """s_t = mean |x_t − x_{t−1}| over pixels, (B, T); frame 0 takes frame 1's."""
    _check_videos(videos)
    change = reduce((videos[:, :, 1:] - videos[:, :, :-1]).abs(), "b c t h w -> b t", "mean")  # (B, T − 1)
    return torch.cat([change[:, :1], change], 1)


def constant_velocity_scores(videos: torch.Tensor, digit_size: int = 14) -> torch.Tensor:
    """s_t = ‖ĉ_t − c_t‖ in pixels, (B, T): the tracked centroid against its constant-velocity prediction.

    The centre of a `digit_size` digit lives in [lo, hi] = [(d − 1) / 2, size − 1 − (d − 1) / 2]; a prediction
    past a wall is reflected back. MNIST digits are centred by their centre of mass, so the centroid is the centre
    to about a pixel; right after a bounce inside a step (the digit seems to stall at the wall) the prediction is off
    by up to one step.
    """
    _check_videos(videos)
    if videos.shape[2] < 3:
        raise ValueError(f"constant velocity needs at least 3 frames, got {videos.shape[2]}")
    c = centroids(videos)  # (B, T, 2)
    last = c[:, 1:-1]  # (B, T − 2, 2) c_{t−1} for frames t = 2 …
    # a wall the centroid is already past (it is the centre only to about a pixel) is moved to where it is
    lo = last.clamp(max=(digit_size - 1) / 2)
    hi = last.clamp(min=videos.shape[-1] - 1 - (digit_size - 1) / 2)
    predicted = 2 * last - c[:, :-2]
    predicted = hi - (hi - (lo + (predicted - lo).abs())).abs()  # reflected off lo, then off hi
    error = (predicted - c[:, 2:]).norm(dim=-1)
    return torch.cat([error[:, :1], error[:, :1], error], 1)


def centroids(videos: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted centre (y, x) in pixels of each frame, (B, T, 2),
    intensity = (x + 1) / 2 of the channel mean."""
    w = reduce((videos + 1) / 2, "b c t h w -> b t h w", "mean").clamp(min=0)
    H, W = w.shape[-2:]
    mass = w.sum((-2, -1)).clamp(min=1e-8)
    y = (w.sum(-1) * torch.arange(H, device=w.device)).sum(-1) / mass
    x = (w.sum(-2) * torch.arange(W, device=w.device)).sum(-1) / mass
    return torch.stack([y, x], -1)


def zscore(scores: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(s_t − mean_t s) / (std_t s + eps) within each video (B, T): a video's own frames are its yardstick.

    It puts every video on one scale, and so it also hides an anomaly that spans a whole video.
    """
    return (scores - scores.mean(1, keepdim=True)) / (scores.std(1, unbiased=False, keepdim=True) + eps)


def smooth(scores: torch.Tensor, window: int = 3) -> torch.Tensor:
    """A centred moving average over `window` frames (odd), (B, T); the windows shrink at the ends."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number of frames, got {window}")
    return F.avg_pool1d(scores[:, None], window, stride=1, padding=window // 2, count_include_pad=False)[:, 0]


# the post-processings a benchmark compares, by name: each maps raw scores (B, T) to scores (B, T)
POSTPROCESSING = {"raw": lambda s: s, "smoothed 3": lambda s: smooth(s, 3), "z-score": lambda s: zscore(s),
                  "z-score, smoothed 3": lambda s: smooth(zscore(s), 3)}


def evaluate(scores: torch.Tensor, labels: torch.Tensor, kinds: list[str]) -> dict[str, dict[str, float]]:
    """Frame-level AUROC and AP for each anomaly type, and their mean.

    A type is scored on the frames of its videos and of the normal ones: its anomalous frames against all the
    normal frames there. `kinds` (B,) names each video's type, "normal" for a normal video.
    """
    if scores.shape != labels.shape or scores.ndim != 2 or len(kinds) != len(scores):
        raise ValueError(f"expected scores and labels (B, T) of one shape and B kinds, got {tuple(scores.shape)}, "
                         f"{tuple(labels.shape)} and {len(kinds)} kinds")
    normal = torch.tensor([k == "normal" for k in kinds])
    table = {}
    for kind in dict.fromkeys(k for k in kinds if k != "normal"):
        rows = normal | torch.tensor([k == kind for k in kinds])
        table[kind] = {"auroc": auroc(scores[rows], labels[rows]), "ap": average_precision(scores[rows], labels[rows])}
    if not table:
        raise ValueError("expected some anomalous videos to evaluate, got only normal ones")
    table["mean"] = {m: sum(row[m] for row in table.values()) / len(table) for m in ("auroc", "ap")}
    return table


def _check_videos(videos: torch.Tensor) -> None:
    if not isinstance(videos, torch.Tensor) or videos.ndim != 5 or videos.shape[2] < 2:
        got = tuple(videos.shape) if isinstance(videos, torch.Tensor) else type(videos).__name__
        raise ValueError(f"expected a video batch (B, C, T, H, W) with T >= 2, got {got}")
