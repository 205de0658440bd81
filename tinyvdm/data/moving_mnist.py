"""Moving MNIST (Srivastava et al., 2015), generated on the fly with labels and captions.

Video i of a dataset is a pure function of (seed, split, i): every random choice is a
counter-based hash of those numbers, so no video has to be stored, any index can be
made without making the ones before it, and a batch of indices is made at once.

A digit starts at a random position and moves `speed` pixels per frame along one of
eight compass directions; with `bounce=True` it reflects off the frame's edges:

    p(t) = L - |L - ((p0 + v t) mod 2L)|      (a triangle wave on [0, L], L = size - digit_size)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F

from .mnist import load_digits

# Counter-clockwise from "right", as (dy, dx) steps; image rows grow downwards.
DIRECTIONS = ("right", "up and to the right", "up", "up and to the left",
              "left", "down and to the left", "down", "down and to the right")
STEPS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))
DIRECTION_OF_STEP = np.full(9, -1)  # (dy + 1) * 3 + (dx + 1) -> index into DIRECTIONS; -1: no motion
for _k, (_dy, _dx) in enumerate(STEPS):
    DIRECTION_OF_STEP[(_dy + 1) * 3 + _dx + 1] = _k
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Caption templates: {d} the digit (numeral or word), {dir} the direction, {a} "a" or "an".
PHRASINGS = (
    "the digit {d} moves {dir}",
    "{a} {d} moving {dir}",
    "digit {d} goes {dir}",
    "the number {d} travels {dir}",
    "a handwritten {d} drifting {dir}",
    "{d} heading {dir}",
)
# Templates never used in training, to test that a model learned words, not one sentence.
HELD_OUT_PHRASINGS = (
    "watch the {d} glide {dir}",
    "there is {a} {d} that slides {dir}",
)


@dataclass(frozen=True)
class MovingMNISTConfig:
    """What a Moving MNIST video looks like."""
    num_digits: int = 1
    frames: int = 8
    size: int = 32
    digit_size: int = 14
    speed: int = 2
    bounce: bool = True
    classes: tuple[int, ...] | None = None  # the digit classes videos may show; None: all ten

    def __post_init__(self):
        for name in ("num_digits", "frames", "size", "digit_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.speed < 0:
            raise ValueError(f"speed must be >= 0 pixels per frame, got {self.speed}")
        if self.digit_size > self.size:
            raise ValueError(f"size={self.size} is smaller than digit_size={self.digit_size}: "
                             "the frame must hold the digit")
        if self.classes is not None:
            classes = tuple(sorted(set(int(c) for c in self.classes)))
            if not classes or not set(classes) <= set(range(10)):
                raise ValueError(f"classes must be some of the digits 0-9 (or None for all), got {self.classes}")
            object.__setattr__(self, "classes", classes)  # a JSON list read back from a config is the same classes


PRESETS = {
    "course": MovingMNISTConfig(),  # small enough to train video models on a 2-core CPU
    "classic": MovingMNISTConfig(num_digits=2, frames=20, size=64, digit_size=28, speed=3),
}


def make_config(preset: str = "course", **overrides) -> MovingMNISTConfig:
    """A preset's config with some fields replaced; unknown presets or fields are errors."""
    if preset not in PRESETS:
        raise ValueError(f"unknown Moving MNIST preset {preset!r}; expected one of {sorted(PRESETS)}")
    names = {f.name for f in fields(MovingMNISTConfig)}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(f"unknown Moving MNIST option(s) {sorted(unknown)}; expected some of {sorted(names)}")
    return replace(PRESETS[preset], **overrides)


class MovingMNIST(torch.utils.data.Dataset):
    """`length` seeded videos; `ds[i] -> (video (1, T, H, W) in [-1, 1], caption, labels)`.

    Digits are drawn from the split's images of `config.classes` (all ten by default; leaving one out makes
    the normal data of the anomaly benchmark, `tinyvdm.data.anomalies`).

    labels: "digits" (n,) classes, "direction" (n,) indices into DIRECTIONS,
    "positions" (T, n, 2) digit centres (y, x) in pixels, "phrasing" () template index.
    """

    def __init__(self, length: int = 10_000, preset: str = "course", split: str = "train",
                 seed: int = 0, phrasings: tuple[str, ...] = PHRASINGS, **overrides):
        if length < 1:
            raise ValueError(f"length must be a positive number of videos, got {length}")
        if not phrasings:
            raise ValueError("phrasings must hold at least one caption template")
        self.config = make_config(preset, **overrides)
        self.length, self.split, self.seed, self.phrasings = length, split, seed, tuple(phrasings)
        images, self.digit_labels = load_digits(split)
        d = self.config.digit_size
        digits = torch.from_numpy(images).float().div(255.0)[:, None]  # (N, 1, 28, 28)
        if d != digits.shape[-1]:
            digits = F.interpolate(digits, size=(d, d), mode="bilinear", antialias=True, align_corners=False)
        self.digits = digits[:, 0].clamp(0, 1)  # (N, d, d)
        classes = self.config.classes
        self.pool = np.flatnonzero(np.isin(self.digit_labels, classes if classes is not None else range(10)))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if not -self.length <= i < self.length:
            raise IndexError(f"video index {i} out of range for a dataset of {self.length}")
        videos, captions, labels = self.batch([i % self.length])
        return videos[0], captions[0], {k: v[0] for k, v in labels.items()}

    def batch(self, indices) -> tuple[torch.Tensor, list[str], dict[str, torch.Tensor]]:
        """Videos (B, 1, T, H, W), captions and stacked labels for many indices at once."""
        labels = self.sample_labels(indices)
        videos = self.render(labels["source"], labels["positions"])
        captions = [caption(labels["digits"][b].tolist(), labels["direction"][b].tolist(),
                            self.phrasings[labels["phrasing"][b]], words=bool(labels["words"][b]))
                    for b in range(len(labels["phrasing"]))]
        return videos, captions, {k: v for k, v in labels.items() if k not in ("source", "words")}

    def sample_labels(self, indices) -> dict[str, torch.Tensor]:
        """Every random choice of videos `indices`:
        which digits ("source" rows of `self.digits`), start, direction, caption."""
        c, n = self.config, self.config.num_digits
        idx = np.asarray(indices, dtype=np.uint64).reshape(-1)
        u = lambda stream: _uniform(self.seed, self.split, idx, stream)  # (B,) in [0, 1)
        source = np.stack([self.pool[(u(10 + k) * len(self.pool)).astype(np.int64)] for k in range(n)], 1)
        direction = np.stack([(u(20 + k) * 8).astype(np.int64) for k in range(n)], 1)
        room = c.size - c.digit_size
        start = np.stack([np.stack([np.floor(u(30 + 2 * k + a) * (room + 1)) for a in (0, 1)], -1)
                          for k in range(n)], 1)  # (B, n, 2) top-left corner
        step = np.asarray(STEPS)[direction]  # (B, n, 2) as (dy, dx)
        if c.bounce and room > 0:
            # starting against a wall and moving into it makes the same video as moving away: label what is seen
            step = np.where(((start == 0) & (step < 0)) | ((start == room) & (step > 0)), -step, step)
            direction = DIRECTION_OF_STEP[(step[..., 0] + 1) * 3 + step[..., 1] + 1]
        velocity = step * float(c.speed)
        t = np.arange(c.frames, dtype=np.float64)[None, :, None, None]
        corner = start[:, None] + velocity[:, None] * t  # (B, T, n, 2)
        if c.bounce and room > 0:
            corner = room - np.abs(room - np.mod(corner, 2 * room))
        elif c.bounce:
            corner = np.zeros_like(corner)
        return {
            "source": torch.from_numpy(source),
            "digits": torch.from_numpy(self.digit_labels[source]),
            "direction": torch.from_numpy(direction),
            "positions": torch.from_numpy(corner + (c.digit_size - 1) / 2).float(),
            "phrasing": torch.from_numpy((u(1) * len(self.phrasings)).astype(np.int64)),
            "words": torch.from_numpy(u(2) < 0.5),
        }

    def render(self, source: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Paste digits `source` (B, n) with centres `positions` (B, T, n, 2) -> (B, 1, T, H, W) in [-1, 1]."""
        c = self.config
        B, T, n, _ = positions.shape
        corner = torch.round(positions - (c.digit_size - 1) / 2).long()  # (B, T, n, 2)
        d, S = c.digit_size, c.size
        i = torch.arange(d)
        y = corner[..., 0, None, None] + i[:, None]  # (B, T, n, d, 1) frame row of each digit row
        x = corner[..., 1, None, None] + i[None, :]  # (B, T, n, 1, d)
        frame = torch.arange(B * T).view(B, T, 1, 1, 1) * (S * S)
        # flat index of every digit pixel in all frames; pixels off the frame go to one spare slot
        flat = torch.where((y >= 0) & (y < S) & (x >= 0) & (x < S), frame + y * S + x, B * T * S * S)
        out = torch.full((B * T * S * S + 1,), -1.0)
        glyph = self.digits[source] * 2 - 1  # (B, n, d, d) in [-1, 1]
        for k in range(n):
            idx, value = flat[:, :, k], glyph[:, None, k].expand(B, T, d, d)
            out[idx] = value if k == 0 else torch.maximum(out[idx], value)  # overlaps: brighter stroke wins
        return out[:-1].view(B, 1, T, S, S)

    def config_dict(self) -> dict:
        return {"length": self.length, "split": self.split, "seed": self.seed, **asdict(self.config)}


def caption(digits, directions, template: str = PHRASINGS[0], words: bool = False) -> str:
    """'the digit 7 moves up and to the left' (and '..., and the digit 3 moves down' for more digits)."""
    parts = [template.format(d=DIGIT_WORDS[d] if words else str(d), dir=DIRECTIONS[r], a="an" if d == 8 else "a")
             for d, r in zip(digits, directions)]
    return " and ".join(parts)


def _uniform(seed: int, split: str, idx: np.ndarray, stream: int) -> np.ndarray:
    """Uniform [0, 1) numbers that depend only on (seed, split, index, stream): splitmix64."""
    salt = np.uint64(sum(ord(ch) * 131 ** k for k, ch in enumerate(split)) % (1 << 61))
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + salt
             + idx * np.uint64(0xBF58476D1CE4E5B9) + np.uint64(stream) * np.uint64(0x94D049BB133111EB))
        for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            z = (z ^ (z >> np.uint64(shift))) * np.uint64(mult)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
