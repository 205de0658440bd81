"""The demo: Moving MNIST videos with their captions, written as one GIF grid."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from .data import MovingMNIST
from .viz import save_gif


def demo_cli(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tinyvdm demo", description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("out/demo.gif"), help="where to write the GIF")
    ap.add_argument("--n", type=int, default=8, help="how many videos")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="course", help="Moving MNIST preset: course or classic")
    a = ap.parse_args(argv)
    start = time.perf_counter()
    ds = MovingMNIST(a.n, preset=a.preset, seed=a.seed)
    videos, captions, _ = ds.batch(range(a.n))
    path = save_gif(videos, a.out, titles=captions, ncols=min(a.n, 4))
    for c in captions:
        print(" ", c)
    print(f"wrote {a.n} Moving MNIST videos ({a.preset}) to {path.resolve()} in {time.perf_counter() - start:.1f} s")
    return 0
