"""The evaluator: small networks that read Moving MNIST videos, trained by the course on train digits only.

Three readers, each answering one question about a video batch (B, 1, T, H, W) in [-1, 1]
(frames are resized to 32 x 32, the course preset's size, so other sizes and frame counts work):

- `FrameReader`, a 2-D CNN: per frame, which digit (10 classes) and where its centre is (y, x).
- `fit_bouncing_motion`, no weights: the constant-velocity motion with reflections off the walls
  closest to the per-frame centres, p(t) = lo + L - |L - ((z0 + v t) mod 2L)|, gives the initial
  direction, the speed, and how far the read trajectory is from any such motion.
- `VideoEncoder`, a 3-D CNN trained to tell the digit and the direction of a whole clip; its
  penultimate features are the FVD features, as the frame reader's are the FID features.

The shipped weights (data/checkpoints/evaluator.pt) were trained by `python -m tinyvdm.metrics`
through the course's trainer; their card (evaluator.json) gives the command, wall time and test scores.

Why this is not the FVD of papers: real FVD (Unterthiner et al., 2018) embeds videos with I3D,
a network trained on Kinetics-400 human actions, and its numbers are comparable between papers
only because everyone uses those exact weights. They are not shipped here, and natural-video
features would say little about bouncing digits. This proxy uses features of a network trained
on Moving MNIST: it measures whether generated videos have the digit shapes, digit statistics
and motions of real Moving MNIST, as this encoder sees them. It says nothing about natural video,
its values mean nothing next to published FVDs, and it is blind to what the encoder never learned
to see (the encoder was trained to tell digits and directions, not, say, stroke texture).
"""
from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..data import DIRECTIONS, MovingMNIST, make_config
from ..data.mnist import DATA_DIR
from ..data.moving_mnist import DIRECTION_OF_STEP
from ..machine import cpu_name
from .frechet import FrechetScore, frechet_distance

CHECKPOINT = DATA_DIR / "checkpoints" / "evaluator.pt"
SIZE = 32  # frames are read at the course preset's size
SPEEDS = torch.arange(1, 17) * 0.25  # candidate speeds of the motion fit, pixels per frame at 32 x 32
GRID = 0.25  # resolution of the fitted start, pixels at 32 x 32
WALL = 0.5  # a start this close to a wall counts as moving away from it (moving into it looks the same)
_DIRECTION_OF_STEP = torch.from_numpy(DIRECTION_OF_STEP)  # index (dy + 1) * 3 + dx + 1 -> DIRECTIONS index


def block(conv: nn.Module) -> tuple[nn.Module, ...]:
    """conv -> GroupNorm -> SiLU."""
    return conv, nn.GroupNorm(min(8, conv.out_channels), conv.out_channels), nn.SiLU()


class FrameReader(nn.Module):
    """2-D CNN on frames (N, 1, 32, 32) -> features (N, F), digit logits (N, 10), centre (N, 2) (y, x) in pixels.

    The digit is read from features max-pooled over space, so it does not depend on where the digit
    is; the centre is the mean cell position under a softmax heat map on an 8 x 8 grid
    (soft-argmax), sum_ij softmax(h)_ij c_ij, so it moves with the digit.
    """

    def __init__(self, width: int = 16, features: int = 64):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            *block(nn.Conv2d(1, w, 3, padding=1)),
            *block(nn.Conv2d(w, 2 * w, 3, padding=1, stride=2)),  # 16 x 16
            *block(nn.Conv2d(2 * w, 2 * w, 3, padding=1)),
            *block(nn.Conv2d(2 * w, 4 * w, 3, padding=1, stride=2)),  # 8 x 8
            *block(nn.Conv2d(4 * w, 4 * w, 3, padding=1)))
        self.features = nn.Sequential(nn.Linear(4 * w, features), nn.SiLU())
        self.digit = nn.Linear(features, 10)
        self.heat = nn.Conv2d(4 * w, 1, 1)

    def forward(self, frames: torch.Tensor):
        h = self.body(frames)  # (N, 4w, 8, 8)
        features = self.features(h.amax((2, 3)))
        n = h.shape[-1]
        heat = self.heat(h).flatten(1).softmax(-1).view(-1, n, n)  # (N, 8, 8), sums to 1
        cells = (torch.arange(n, device=h.device) + 0.5) * (frames.shape[-1] / n) - 0.5  # cell centres in pixels
        centre = torch.stack([torch.einsum("nyx,y->n", heat, cells), torch.einsum("nyx,x->n", heat, cells)], -1)
        return features, self.digit(features), centre


class VideoEncoder(nn.Module):
    """3-D CNN on videos (B, 1, T, 32, 32) -> features (B, F), digit logits (B, 10), direction logits (B, 8).

    Features are max-pooled over space and averaged over time, so any number of frames goes in.
    """

    def __init__(self, width: int = 16, features: int = 64):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            *block(nn.Conv3d(1, w, 3, padding=1, stride=(1, 2, 2))),  # T x 16 x 16
            *block(nn.Conv3d(w, 2 * w, 3, padding=1, stride=(1, 2, 2))),  # T x 8 x 8
            *block(nn.Conv3d(2 * w, 4 * w, 3, padding=1, stride=2)))  # T/2 x 4 x 4
        self.features = nn.Sequential(nn.Linear(4 * w, features), nn.SiLU())
        self.digit = nn.Linear(features, 10)
        self.direction = nn.Linear(features, len(DIRECTIONS))

    def forward(self, videos: torch.Tensor):
        features = self.features(self.body(videos).amax((3, 4)).mean(2))  # (B, 4w, T', h, w) -> (B, F)
        return features, self.digit(features), self.direction(features)


class Evaluator(nn.Module):
    """Reads Moving MNIST videos and scores them: digit, motion, consistency, FID / FVD.

        ev = Evaluator.load()
        ev.read(videos)                           # per-video digit, per-frame centres, direction, ...
        ev.score(videos, digits=..., directions=...)  # accuracies and consistencies, with n
        ev.fvd(videos_a, videos_b), ev.fid(videos_a, videos_b)
    """

    def __init__(self, frame: dict | None = None, video: dict | None = None, digit_size: int = 14):
        super().__init__()
        self.config = {"frame": dict(frame or {}), "video": dict(video or {}), "digit_size": digit_size}
        self.frame = FrameReader(**self.config["frame"])
        self.video = VideoEncoder(**self.config["video"])
        self.digit_size = digit_size

    @classmethod
    def load(cls, path: str | Path = CHECKPOINT, device: str | torch.device = "cpu") -> "Evaluator":
        """The shipped evaluator (or one written by `save`), in eval mode."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no evaluator checkpoint at {path}; train one with "
                                    "`python -m tinyvdm.metrics`")
        state = torch.load(path, map_location="cpu", weights_only=True)
        ev = cls(**state["config"])
        ev.load_state_dict(state["weights"])
        return ev.to(device).eval()

    def save(self, path: str | Path) -> Path:
        """Config and weights as plain tensors, so `load` needs no unpickling (`weights_only=True`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
        torch.save({"config": self.config, "weights": weights}, path)
        return path

    @torch.no_grad()
    def read(self, videos: torch.Tensor, chunk: int = 16) -> dict[str, torch.Tensor]:
        """What the evaluator sees in each video of a batch (B, 1, T, H, W).

        digit_probs (B, 10): the frame reader's class probabilities averaged over frames; digit (B,);
        frame_digits (B, T); positions (B, T, 2): digit centre (y, x) per frame in the input's pixels;
        direction (B,) index into DIRECTIONS, speed (B,) pixels per frame and motion_error (B,) pixels
        (RMS distance of the positions to the fitted bouncing motion), from `fit_bouncing_motion`.
        """
        x = self._prepare(videos)
        B, _, T, H, W = videos.shape
        probs, centres = [], []
        for part in x.split(chunk):
            frames = rearrange(part, "b c t h w -> (b t) c h w")
            _, logits, centre = self.frame(frames)
            probs.append(rearrange(logits.softmax(-1), "(b t) k -> b t k", t=T))
            centres.append(rearrange(centre, "(b t) a -> b t a", t=T))
        probs, centres = torch.cat(probs).float().cpu(), torch.cat(centres).float().cpu()  # (B, T, 10), (B, T, 2)
        motion = fit_bouncing_motion(centres, digit_size=self.digit_size)
        scale = torch.tensor([H, W]) / SIZE  # pixels at 32 x 32 -> pixels of the input
        digit_probs = probs.mean(1)
        return {"digit_probs": digit_probs, "digit": digit_probs.argmax(-1), "frame_digits": probs.argmax(-1),
                "positions": (centres + 0.5) * scale - 0.5, "direction": motion["direction"],
                "speed": motion["speed"] * scale.mean(), "motion_error": motion["error"] * scale.mean()}

    def score(self, videos: torch.Tensor, digits=None, directions=None, positions=None) -> dict[str, float]:
        """`score_readings` of `read(videos)`: accuracies, consistency and trajectory errors, with n."""
        return score_readings(self.read(videos), digits, directions, positions)

    def fid(self, videos_a: torch.Tensor, videos_b: torch.Tensor) -> FrechetScore:
        """Per-frame Fréchet distance (FID-style) on the frame reader's features; n counts frames."""
        return frechet_distance(self.frame_features(videos_a), self.frame_features(videos_b), "FID", "frames")

    def fvd(self, videos_a: torch.Tensor, videos_b: torch.Tensor) -> FrechetScore:
        """Per-video Fréchet distance (FVD-style) on the 3-D encoder's features; n counts videos."""
        return frechet_distance(self.video_features(videos_a), self.video_features(videos_b), "FVD", "videos")

    @torch.no_grad()
    def frame_features(self, videos: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        """Frame reader features (B*T, F) of every frame of a batch (B, 1, T, H, W)."""
        x = self._prepare(videos)
        return torch.cat([self.frame(rearrange(part, "b c t h w -> (b t) c h w"))[0].float().cpu()
                          for part in x.split(chunk)])

    @torch.no_grad()
    def video_features(self, videos: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        """Video encoder features (B, F) of a batch (B, 1, T, H, W)."""
        x = self._prepare(videos)
        return torch.cat([self.video(part)[0].float().cpu() for part in x.split(chunk)])

    def _prepare(self, videos: torch.Tensor) -> torch.Tensor:
        """Check a video batch and resize its frames to 32 x 32 on the evaluator's device."""
        if not isinstance(videos, torch.Tensor) or videos.dim() != 5 or videos.shape[1] != 1:
            shape = tuple(videos.shape) if isinstance(videos, torch.Tensor) else type(videos).__name__
            raise ValueError(f"expected a video batch (B, 1, T, H, W) in [-1, 1], got {shape}")
        if videos.shape[0] < 1 or videos.shape[2] < 2 or min(videos.shape[3:]) < 8:
            raise ValueError(f"expected at least 1 video of at least 2 frames of at least 8 x 8 pixels, "
                             f"got (B, 1, T, H, W) = {tuple(videos.shape)}")
        x = videos.detach().to(next(self.parameters()).device, torch.float32).clamp(-1, 1)
        if x.shape[-2:] != (SIZE, SIZE):
            T = x.shape[2]
            frames = F.interpolate(rearrange(x, "b c t h w -> (b t) c h w"), size=(SIZE, SIZE), mode="bilinear",
                                   antialias=True, align_corners=False)
            x = rearrange(frames, "(b t) c h w -> b c t h w", t=T)
        return x


def score_readings(readings: dict[str, torch.Tensor], digits=None, directions=None, positions=None) -> dict[str, float]:
    """Scores of what `Evaluator.read` saw in n videos, each a mean over the videos.

    identity_consistency: fraction of frames whose digit is the video's digit (1 = no flicker);
    motion_error: RMS pixels from the closest bouncing constant-velocity motion (0 for real videos);
    digit_acc, direction_acc: against `digits` (B,) and `directions` (B,) when given (e.g. the prompts);
    trajectory_error: RMS pixels from reference `positions` (B, T, 2) (y, x) when given.
    """
    B, T = readings["frame_digits"].shape
    scores = {"n": B,
              "identity_consistency": (readings["frame_digits"] == readings["digit"][:, None]).float().mean().item(),
              "motion_error": readings["motion_error"].mean().item()}
    for name, target, key in (("digit_acc", digits, "digit"), ("direction_acc", directions, "direction")):
        if target is not None:
            target = torch.as_tensor(target).reshape(-1).cpu()
            if target.shape != (B,):
                raise ValueError(f"expected {key} targets (B,) = ({B},), got {tuple(target.shape)}")
            scores[name] = (readings[key] == target).float().mean().item()
    if positions is not None:
        ref = torch.as_tensor(positions).float().cpu()
        if ref.shape != (B, T, 2):
            raise ValueError(f"expected reference positions (B, T, 2) = ({B}, {T}, 2), got {tuple(ref.shape)}")
        scores["trajectory_error"] = (readings["positions"] - ref).square().sum(-1).mean().sqrt().item()
    return scores


def fit_bouncing_motion(positions: torch.Tensor, digit_size: int = 14, size: int = SIZE,
                        speeds: torch.Tensor = SPEEDS, horizon: int = 0) -> dict[str, torch.Tensor]:
    """The bouncing constant-velocity motion closest (least squares) to centres `positions` (B, T, 2).

    Each axis follows p(t) = lo + L - |L - ((z0 + s t) mod 2L)|, a triangle wave between the walls
    lo = (d - 1) / 2 and lo + L, L = size - d, with the unfolded start z0 in [0, 2L) (z0 < L: moving
    towards larger p). Moving axes share the speed s (the data's 8 directions step by (dy, dx) in
    {-1, 0, 1}^2 times the speed); a still axis is a constant. Grid search over s and z0 on both
    axes, for each of diagonal / vertical / horizontal motion. A digit that starts on a wall moving
    into it gives the same video as one moving away, so a start within WALL pixels of a wall counts
    as moving away.

    Returns direction (B,) index into DIRECTIONS (the initial one), speed (B,) pixels per frame,
    error (B,) RMS distance in pixels, and fit (B, T + horizon, 2) the fitted trajectory, continued `horizon`
    frames past the last one.
    """
    if positions.dim() != 3 or positions.shape[-1] != 2 or positions.shape[1] < 2:
        raise ValueError(f"expected positions (B, T, 2) with T >= 2, got {tuple(positions.shape)}")
    p = positions.detach().double().cpu()
    B, T, _ = p.shape
    lo, L = (digit_size - 1) / 2, size - digit_size
    z0 = torch.arange(0, 2 * L, GRID, dtype=torch.float64)  # (Z,)
    s = speeds.double()
    wave = lambda start, speed, frames: lo + L - (L - torch.remainder(
        start + speed * torch.arange(frames, dtype=torch.float64), 2 * L)).abs()  # p(t), t < frames, broadcast
    paths = wave(z0[None, :, None], s[:, None, None], T)  # (S, Z, T)
    # sum_t (p_t - path_t)^2 = |p|^2 - 2 p . path + |path|^2 for every axis, speed and start at once
    flat = rearrange(paths, "s z t -> (s z) t")
    axes = rearrange(p, "b t a -> (b a) t")
    err = axes.square().sum(1, keepdim=True) - 2 * axes @ flat.T + flat.square().sum(1)  # (B*2, S*Z)
    moving, start = rearrange(err, "(b a) (s z) -> b s z a", a=2, s=len(s)).min(2)  # (B, S, 2) each
    moving = moving.clamp(min=0)
    still = (p - p.mean(1, keepdim=True)).square().sum(1)  # (B, 2)
    total = torch.stack([moving.sum(-1), moving[..., 0] + still[:, None, 1], still[:, None, 0] + moving[..., 1]], 1)
    best = total.flatten(1).argmin(1)  # (B,) over (pattern: diagonal, vertical, horizontal) x speed
    pattern, k = best // len(s), best % len(s)
    rows = torch.arange(B)
    z_index = start[rows, k]  # (B, 2)
    sign = torch.where(torch.remainder(z0[z_index] + WALL, 2 * L) < L, 1, -1)  # (B, 2)
    moves = torch.stack([pattern != 2, pattern != 1], -1)  # (B, 2) which axes move
    step = torch.where(moves, sign, 0)  # (B, 2) (dy, dx)
    direction = _DIRECTION_OF_STEP[(step[:, 0] + 1) * 3 + step[:, 1] + 1]
    fit = rearrange(wave(z0[z_index][..., None], s[k][:, None, None], T + horizon), "b a t -> b t a")
    fit = torch.where(moves[:, None], fit, p.mean(1, keepdim=True))  # (B, T + horizon, 2)
    error = (total.flatten(1)[rows, best] / (2 * T)).sqrt()
    return {"direction": direction, "speed": torch.where(moves.any(-1), s[k], 0.0).float(),
            "error": error.float(), "fit": fit.float()}


def evaluator_task(config):
    """The trainer's task (see `tinyvdm.train`): both networks on fresh train-split data every step.

    Loss = CE(frame digit) + Huber(frame centre, in pixels) on `config.model["frames"]` single frames
    (each a different digit), + CE(video digit) + CE(video direction) on `config.batch_size` videos,
    all with randomly warped digits (`random_warp`, strength `config.model["warp"]`). The direction
    targets are the visible initial directions, read from the true positions by `fit_bouncing_motion`.
    """
    from ..train import Task

    n_frames, warp = config.model["frames"], config.model["warp"]
    videos = MovingMNIST(length=config.steps * config.batch_size, split="train", seed=config.seed, **config.data)
    frames = MovingMNIST(length=config.steps * n_frames, split="train", seed=config.seed + 1,
                         **{**config.data, "frames": 1})
    model = Evaluator(config.model["frame"], config.model["video"], digit_size=videos.config.digit_size)
    geometry = {"digit_size": videos.config.digit_size, "size": videos.config.size}

    def batch_fn(step: int):
        x, _, labels = videos.batch(range(step * config.batch_size, (step + 1) * config.batch_size))
        positions = labels["positions"][:, :, 0]  # (B, T, 2) of the only digit
        direction = fit_bouncing_motion(positions, **geometry)["direction"]
        f, _, frame_labels = frames.batch(range(step * n_frames, (step + 1) * n_frames))
        return x, labels["digits"][:, 0], direction, positions, f, frame_labels["digits"][:, 0], \
            frame_labels["positions"][:, :, 0]

    def loss_fn(model, batch, generator):
        x, digits, directions, positions, f, frame_digits, frame_positions = batch
        x, f = random_warp(x, positions, generator, **warp), random_warp(f, frame_positions, generator, **warp)
        _, digit_logits, centre = model.frame(f[:, :, 0])
        _, video_digit, video_direction = model.video(x)
        return (F.cross_entropy(digit_logits, frame_digits) + F.smooth_l1_loss(centre, frame_positions[:, 0])
                + F.cross_entropy(video_digit, digits) + F.cross_entropy(video_direction, directions))

    return Task(model, loss_fn, batch_fn)


def random_warp(videos: torch.Tensor, positions: torch.Tensor, generator: torch.Generator,
                degrees: float = 12.0, strain: float = 0.15) -> torch.Tensor:
    """Warp each video's digit by A = R(a) (I + E): a rotation by a in [-degrees, degrees] after a strain
    (scales and shears) with E_ij in [-strain, strain]; the same A in every frame, about the digit's
    centre c_t, so the centres stay where they were: frame'(q) = frame(c_t + A^{-1} (q - c_t)).
    """
    B, _, T, H, W = videos.shape
    device = videos.device
    u = (torch.rand(B, 5, generator=generator, device=generator.device) * 2 - 1).to(device)
    angle = u[:, 0] * math.radians(degrees)
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, 2, 2)
    inverse = torch.linalg.inv(rotation @ (torch.eye(2, device=device) + strain * u[:, 1:].view(B, 2, 2)))  # (B, 2, 2)
    q = torch.stack(torch.meshgrid(torch.arange(H, device=device), torch.arange(W, device=device), indexing="ij"),
                    -1).float()  # (H, W, 2) pixel (y, x)
    c = positions[:, :, None, None, :]  # (B, T, 1, 1, 2)
    source = c + torch.einsum("bij,bthwj->bthwi", inverse, q - c)  # (B, T, H, W, 2) (y, x) in pixels
    grid = (2 * source + 1) / torch.tensor([H, W], device=device) - 1  # grid_sample's [-1, 1] units
    frames = rearrange(videos, "b c t h w -> (b t) c h w") + 1  # background 0, so zero padding is background
    warped = F.grid_sample(frames, rearrange(grid.flip(-1), "b t h w a -> (b t) h w a"), align_corners=False)
    return rearrange(warped - 1, "(b t) c h w -> b c t h w", t=T)


def shuffle_frames(videos: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each video's frames in a random order: every frame stays real, the motion does not."""
    B, _, T = videos.shape[:3]
    order = torch.rand(B, T, generator=generator, device=generator.device).argsort(1)  # (B, T) a permutation per video
    order = order.to(videos.device)
    return videos[torch.arange(B, device=videos.device)[:, None], :, order].transpose(1, 2)


def train_config(**changes):
    """The trainer's config of the shipped evaluator (`tinyvdm.train.TrainConfig`), with fields replaced."""
    from dataclasses import asdict, replace

    from ..train import TrainConfig

    config = TrainConfig(
        preset="evaluator", task="tinyvdm.metrics.evaluator:evaluator_task",
        model={"frame": {"width": 16, "features": 64}, "video": {"width": 16, "features": 64}, "frames": 128,
               "warp": {"degrees": 12.0, "strain": 0.15}},
        data=asdict(make_config("course")), batch_size=32, steps=2000, lr=2e-3, min_lr=1e-4, warmup=100,
        ema_decay=0.995, threads=1, out_dir="runs/evaluator", ckpt_every=250, log_every=50)
    return replace(config, **changes)


@torch.no_grad()
def measure(ev: Evaluator, n_test: int = 2000, n_sanity: int = 500, seed: int = 0) -> dict:
    """The card's numbers: accuracies on `n_test` test-split videos (test digits only), and Fréchet sanity checks.

    direction_acc compares with the data's labels; a digit that starts on a wall moving into it looks
    exactly like one moving away, so direction_acc_visible compares with the direction visible in the
    true positions (`fit_bouncing_motion` of the labels' positions), and n_visible counts the videos
    where the two labels agree. Sanity: FVD / FID of real test videos (seed + 1) against real videos
    (seed + 2), their frames shuffled, and them with Gaussian noise of growing std.
    """
    videos, _, labels = MovingMNIST(n_test, split="test", seed=seed).batch(range(n_test))
    positions, digits, directions = labels["positions"][:, :, 0], labels["digits"][:, 0], labels["direction"][:, 0]
    visible = fit_bouncing_motion(positions)["direction"]
    readings = ev.read(videos)
    _, video_digit, video_direction = ev.video(ev._prepare(videos))
    test = {"n": n_test, "split": "test", "seed": seed,
            **score_readings(readings, digits=digits, directions=directions, positions=positions),
            "direction_acc_visible": score_readings(readings, directions=visible)["direction_acc"],
            "n_visible": int((visible == directions).sum()),
            "video_encoder_digit_acc": (video_digit.argmax(1).cpu() == digits).float().mean().item(),
            "video_encoder_direction_acc_visible": (video_direction.argmax(1).cpu() == visible).float().mean().item()}
    real_a = MovingMNIST(n_sanity, split="test", seed=seed + 1).batch(range(n_sanity))[0]
    real_b = MovingMNIST(n_sanity, split="test", seed=seed + 2).batch(range(n_sanity))[0]
    generator = torch.Generator().manual_seed(seed)
    others = {"real": real_b, "shuffled": shuffle_frames(real_b, generator)}
    for std in (0.05, 0.1, 0.2, 0.4):
        others[f"noise_{std}"] = (real_b + std * torch.randn(real_b.shape, generator=generator)).clamp(-1, 1)
    video_a, frame_a = ev.video_features(real_a), ev.frame_features(real_a)
    sanity = {"n": n_sanity, "split": "test",
              "fvd": {k: frechet_distance(video_a, ev.video_features(v)).value for k, v in others.items()},
              "fid": {k: frechet_distance(frame_a, ev.frame_features(v)).value for k, v in others.items()}}
    return {"test": test, "sanity": sanity}


def main(argv: list[str] | None = None) -> Path:
    """`python -m tinyvdm.metrics [--steps N] [--fresh]`: train, save the checkpoint, measure, write its card."""
    import argparse
    import os
    from dataclasses import asdict

    from ..train import train

    parser = argparse.ArgumentParser(prog="python -m tinyvdm.metrics", description=main.__doc__)
    parser.add_argument("--steps", type=int, default=train_config().steps)
    parser.add_argument("--out_dir", default=train_config().out_dir, help="the trainer's run folder (resumable)")
    parser.add_argument("--checkpoint", default=str(CHECKPOINT), help="where the evaluator's weights go")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming from out_dir")
    args = parser.parse_args(argv)
    config = train_config(steps=args.steps, warmup=min(train_config().warmup, args.steps // 10), out_dir=args.out_dir)
    result = train(config, fresh=args.fresh)
    ev = result.ema.eval()
    path = ev.save(args.checkpoint)
    torch.set_num_threads(config.threads)
    began = time.perf_counter()
    numbers = measure(ev)
    card = {
        "what": "Moving MNIST evaluator (tinyvdm.metrics.evaluator): frame digit classifier and centre reader, "
                "3-D CNN video encoder; trained on split='train' digits only, measured on split='test'",
        "command": "python -m tinyvdm.metrics" + " ".join([""] + (argv if argv is not None else sys.argv[1:])),
        "config": asdict(config), "steps": result.log[-1]["step"], "train_wall_s": round(result.log[-1]["wall_s"], 1),
        "measure_wall_s": round(time.perf_counter() - began, 1),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": config.threads,
                    "torch": torch.__version__, "python": platform.python_version()},
        "parameters": {"frame": sum(p.numel() for p in ev.frame.parameters()),
                       "video": sum(p.numel() for p in ev.video.parameters())},
        "checkpoint_bytes": path.stat().st_size, **numbers,
        "notes": [f"direction_acc compares with the data's labels, direction_acc_visible with the direction "
                  f"visible in the true positions; they agree on n_visible / n = "
                  f"{numbers['test']['n_visible'] / numbers['test']['n']:.4f} of the videos (a digit that starts "
                  "on a wall is labelled as moving away from it, which is what the video shows).",
                  "FVD / FID: Fréchet distances on this evaluator's features (video encoder / frame reader), not "
                  "I3D / Inception: comparable only with other numbers of this checkpoint at the same n; real vs "
                  "real is above 0 by the finite-sample bias."]}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(numbers, indent=2))
    return path
