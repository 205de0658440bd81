"""How fast Moving MNIST videos are made: the vectorised generator against a per-video loop.

    python benchmarks/moving_mnist_speed.py [--n 10000]

The baseline pastes each digit frame by frame in Python (as most Moving MNIST scripts do)
from the same labels, so both produce identical videos; the ratio is measured in one run.
"""
import argparse
import time

import numpy as np
import torch

from tinyvdm.data import MovingMNIST


def loop_render(ds, labels):
    """Baseline: one video, one frame, one digit at a time."""
    c = ds.config
    out = torch.zeros(len(labels["source"]), 1, c.frames, c.size, c.size)
    corners = torch.round(labels["positions"] - (c.digit_size - 1) / 2).long()
    for b in range(len(out)):
        for t in range(c.frames):
            for k in range(c.num_digits):
                y, x = corners[b, t, k].tolist()
                glyph = ds.digits[labels["source"][b, k]]
                region = out[b, 0, t, y:y + c.digit_size, x:x + c.digit_size]
                torch.maximum(region, glyph, out=region)
    return out * 2 - 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    a = ap.parse_args()
    torch.set_num_threads(2)
    for preset, n in (("course", a.n), ("classic", a.n // 10)):
        ds = MovingMNIST(n, preset=preset)
        t0 = time.perf_counter()
        videos, _, _ = ds.batch(range(n))
        fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        labels = ds.sample_labels(np.arange(n))
        slow_videos = loop_render(ds, labels)
        slow = time.perf_counter() - t0
        same = torch.equal(videos, slow_videos)
        print(f"{preset:8s} {n:6d} videos {tuple(videos.shape[1:])}: vectorised {fast:6.2f} s "
              f"({n / fast:8,.0f} videos/s) | per-video loop {slow:6.2f} s ({n / slow:6,.0f} videos/s) | "
              f"speed-up x{slow / fast:5.1f} | identical: {same}")


if __name__ == "__main__":
    main()
