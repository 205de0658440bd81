"""Anomalous Moving MNIST: a video anomaly detection benchmark whose every frame has an exact label.

A normal video is a course video (`MovingMNIST`) of one bouncing digit of a *normal* class: every class but
`unseen_digit`. A detector's model must be trained on normal data only, `MovingMNIST(classes=normal_classes(9))`
(`python -m tinyvdm train --preset course --data.classes "(0,1,2,3,4,5,6,7,8)"`), or the unseen-digit anomaly
is not unseen. Each anomalous video is a normal one changed from frame k on, k ~ U{⌈T/3⌉, …, T − 2}, so it
has normal frames before a contiguous anomalous span and frame-level AUROC also ranks frames within a video.

Motion anomalies re-time the digit's own bouncing path: frame t shows the digit where the normal video has it
at time τ(t) (the path is made longer than T, so τ may run past the end):

    normal      τ(t) = t
    teleport    τ(t) = t + Δ                  for t ≥ k   one jump of at least half a digit, then the same motion
    speed       τ(t) = k − 1 + m (t − k + 1)  for t ≥ k   m ∈ {2, 3} times faster from frame k − 1 on
    freeze      τ(t) = k − 1                  for t ≥ k   the frames repeat frame k − 1 exactly

Appearance anomalies keep the motion and change the picture from frame k on:

    occluder      a still grey-to-white square over frames [k, e), e ∈ {k + 1, …, T}
    appearance    the digit becomes a digit of another normal class (only the video's past tells it is wrong)
    unseen_digit  the digit becomes a digit of class `unseen_digit` (any frame alone tells it)

The anomalous frames are [k, T), except teleport ({k}: the frames after the jump move normally) and occluder
([k, e)); a speed-up or a freeze that starts on a bounce can look normal for a frame. Frames default to the
course's 8, the length the course's models are trained at (a reconstruction detector needs a model of videos
of the benchmark's length); `frames=16` gives longer spans to a model of longer videos.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .moving_mnist import MovingMNIST, _uniform, caption, make_config

KINDS = ("normal", "teleport", "speed", "freeze", "occluder", "appearance", "unseen_digit")
SPEEDUPS = (2, 3)


def normal_classes(unseen_digit: int = 9) -> tuple[int, ...]:
    """The digit classes of normal videos: all but `unseen_digit`."""
    if unseen_digit not in range(10):
        raise ValueError(f"unseen_digit must be a digit class 0-9, got {unseen_digit!r}")
    return tuple(c for c in range(10) if c != unseen_digit)


class AnomalyBenchmark:
    """`n` videos of each of `kinds`, interleaved (video i is of kind kinds[i % len(kinds)]), a pure function of
    (seed, split, i); `batch(indices) -> (videos (B, 1, T, H, W) in [-1, 1], frame_labels (B, T) bool, info)`.

    info: "kind" (B,) names, "onset" and "end" (B,) the anomalous span [onset, end) (T, T for normal videos),
    "digits" (B, T) the class shown in each frame, "positions" (B, T, 2) the digit's centre (y, x) in each frame,
    "caption" (B,) the caption of the normal video it was made from (its first digit and direction).
    Moving MNIST options (`frames=16`, ...) override the preset's; the benchmark needs one bouncing digit.
    """

    def __init__(self, n: int, kinds: tuple[str, ...] = KINDS, split: str = "test", seed: int = 0,
                 unseen_digit: int = 9, preset: str = "course", **overrides):
        if n < 1:
            raise ValueError(f"n must be a positive number of videos per kind, got {n}")
        if not kinds or len(set(kinds)) != len(kinds) or not set(kinds) <= set(KINDS):
            raise ValueError(f"kinds must be distinct names from {KINDS}, got {kinds}")
        if "classes" in overrides:
            raise ValueError("the benchmark sets the classes itself (all but unseen_digit); pass unseen_digit instead")
        config = make_config(preset, **overrides)
        if config.num_digits != 1 or not config.bounce or config.speed < 1 or config.frames < 4:
            raise ValueError(f"expected one bouncing digit (num_digits=1, bounce=True), speed >= 1 and frames >= 4, "
                             f"got num_digits={config.num_digits}, bounce={config.bounce}, speed={config.speed}, "
                             f"frames={config.frames}")
        if config.size - config.digit_size < 2 * config.speed:
            raise ValueError(f"expected room for the digit to move: size - digit_size >= 2 speed, "
                             f"got size={config.size}, digit_size={config.digit_size}, speed={config.speed}")
        self.n, self.kinds, self.unseen_digit, self.frames = n, tuple(kinds), unseen_digit, config.frames
        self.normal = np.asarray(normal_classes(unseen_digit))
        room = config.size - config.digit_size
        self.period = math.ceil(2 * room / config.speed)  # frames of one round trip: a teleport skips less
        self.min_jump = min(config.digit_size, room - config.speed) / 2
        long = max(max(SPEEDUPS) * config.frames, config.frames + self.period + 1)
        # the normal paths, longer than the videos so that τ(t) can run ahead
        self.data = MovingMNIST(n * len(kinds), preset, split, seed,
                                **{**overrides, "frames": long, "classes": tuple(self.normal)})

    def __len__(self) -> int:
        return self.n * len(self.kinds)

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor, dict]:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"expected video indices in [0, {len(self)}), got {idx.tolist()}")
        data, T, B = self.data, self.frames, len(idx)
        u = lambda stream: torch.from_numpy(_uniform(data.seed, data.split, idx.astype(np.uint64), stream))  # (B,)
        kind = np.asarray(self.kinds)[idx % len(self.kinds)]
        is_kind = {k: torch.from_numpy(kind == k)[:, None] for k in KINDS}  # (B, 1) each, against (B, T)
        first = math.ceil(T / 3)
        onset = (first + u(100) * (T - 1 - first)).long()[:, None]  # (B, 1) k in [⌈T/3⌉, T − 2]
        t = torch.arange(T)[None]  # (1, T)
        after = t >= onset  # (B, T)

        paths = data.sample_labels(idx)
        path = paths["positions"][:, :, 0]  # (B, T_long, 2) the normal path, far past T
        speedup = torch.as_tensor(SPEEDUPS)[(u(101) * len(SPEEDUPS)).long()][:, None]
        tau = torch.where(after & is_kind["teleport"], t + self._skip(path, onset, u(102)), t)
        tau = torch.where(after & is_kind["speed"], onset - 1 + speedup * (t - onset + 1), tau)
        tau = torch.where(after & is_kind["freeze"], onset - 1, tau)
        positions = path[torch.arange(B)[:, None], tau]  # (B, T, 2)
        source = paths["source"]  # (B, 1)
        videos = data.render(source, positions[:, :, None])

        new_source, new_digit = self._swap(paths["digits"][:, 0].numpy(), kind, u(103), u(104))
        swapped = (is_kind["appearance"] | is_kind["unseen_digit"]) & after  # (B, T)
        videos = torch.where(swapped[:, None, :, None, None], data.render(new_source, positions[:, :, None]), videos)
        digits = torch.where(swapped, new_digit[:, None], paths["digits"])

        end = onset + 1 + (u(105)[:, None] * (T - onset)).long()  # (B, 1) an occluder's e in [k + 1, T]
        end = torch.where(is_kind["teleport"], onset + 1, torch.where(is_kind["occluder"], end, T))
        onset = torch.where(is_kind["normal"], T, onset)
        labels = (t >= onset) & (t < end)  # (B, T)
        occluded = (labels & is_kind["occluder"])[:, None, :, None, None] & self._square(u(107), u(108), u(109))
        # grey to white: video values in [0, 1)
        videos = torch.where(occluded, u(106).float().view(B, 1, 1, 1, 1), videos)
        captions = [caption(d, r) for d, r in zip(paths["digits"].tolist(), paths["direction"].tolist())]
        info = {"kind": kind.tolist(), "onset": onset[:, 0], "end": end[:, 0], "digits": digits,
                "positions": positions, "caption": captions}
        return videos, labels, info

    def _skip(self, path: torch.Tensor, onset: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Δ (B, 1): a uniform choice among the skips 2 … period + 1 whose jump |p(k + Δ) − p(k − 1)| is ≥ min_jump.

        One round trip comes within a step of both walls, and one of them is half the room away or more.
        """
        B = len(path)
        skips = torch.arange(2, self.period + 2)  # (D,)
        rows = torch.arange(B)[:, None]
        jump = (path[rows, onset + skips] - path[rows, onset - 1]).norm(dim=-1)  # (B, D)
        valid = jump >= self.min_jump
        pick = (u * valid.sum(1)).long()[:, None]  # which valid skip, (B, 1)
        return skips[(valid.cumsum(1) > pick).int().argmax(1)][:, None]  # the first skip past `pick` valid ones

    def _swap(self, digit: np.ndarray, kind: np.ndarray, u_class: torch.Tensor, u_image: torch.Tensor):
        """The replacement digit of each video: rows of `data.digits` (B, 1) and classes (B,).

        appearance: another normal class, uniform over the len(normal) − 1 others; unseen_digit: `unseen_digit`.
        """
        normal, labels = self.normal, self.data.digit_labels
        others = (np.searchsorted(normal, digit) + 1 + (u_class.numpy() * (len(normal) - 1)).astype(np.int64))
        new = np.where(kind == "unseen_digit", self.unseen_digit, normal[others % len(normal)])
        order = np.argsort(labels, kind="stable")  # image rows grouped by class
        start, count = np.searchsorted(labels[order], new), np.bincount(labels, minlength=10)[new]
        row = order[start + (u_image.numpy() * count).astype(np.int64)]
        return torch.from_numpy(row)[:, None], torch.from_numpy(new)

    def _square(self, u_side: torch.Tensor, u_y: torch.Tensor, u_x: torch.Tensor) -> torch.Tensor:
        """The occluder's pixels, (B, 1, 1, H, W) bool: a square of side in [d/2, d] at a uniform place."""
        c = self.data.config
        side = (c.digit_size // 2 + u_side * (c.digit_size - c.digit_size // 2 + 1)).long()  # (B,)
        y0, x0 = ((c.size - side + 1) * u_y).long(), ((c.size - side + 1) * u_x).long()
        i = torch.arange(c.size)
        rows = (i >= y0[:, None]) & (i < (y0 + side)[:, None])  # (B, H)
        cols = (i >= x0[:, None]) & (i < (x0 + side)[:, None])  # (B, W)
        return rows[:, None, None, :, None] & cols[:, None, None, None, :]
