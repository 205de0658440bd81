"""Frame-level anomaly detection on the Moving MNIST anomaly benchmark: the diffusion detector against the baselines.

    python benchmarks/anomaly.py                                        # the shipped t2v model, 64 videos per type
    python benchmarks/anomaly.py --ckpt runs/normal/ckpt.pt --t_start 100,300 --zscore --window 3

The detector is partial-diffusion reconstruction (`tinyvdm.pipelines.anomaly.reconstruction_scores`) with the
checkpoint's model driven unconditionally (a caption model gets the empty caption), one row per t_start; the
baselines are frame difference and constant velocity. Every detector's scores get the same post-processing
(--zscore within each video, a --window moving average). The benchmark takes the checkpoint's video geometry.
Prints the per-type frame-level AUROC / AP as a markdown table and writes it, with times and the machine, to --out.

The unseen-digit row measures novelty only for a checkpoint trained without that class (`--data.classes`): the
script takes the class the checkpoint never saw, and says so when it saw all ten (the shipped t2v model did).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tinyvdm.data.anomalies import KINDS, AnomalyBenchmark
from tinyvdm.machine import describe
from tinyvdm.pipelines.anomaly import (constant_velocity_scores, evaluate, frame_difference_scores,
                                       reconstruction_scores, smooth, zscore)
from tinyvdm.pipelines.t2v import CHECKPOINT
from tinyvdm.train import load_checkpoint

GEOMETRY = ("frames", "size", "digit_size", "speed")


def run(ckpt: Path, n: int, t_starts: list[int], steps: int, draws: int, batch: int, normalize: bool, window: int,
        device: torch.device, seed: int = 0) -> dict:
    model, config, task = load_checkpoint(ckpt, device=str(device))
    seen = config.data.get("classes") or tuple(range(10))
    unseen = [c for c in range(10) if c not in seen]
    bench = AnomalyBenchmark(n, seed=seed, unseen_digit=unseen[0] if unseen else 9,
                             **{k: config.data[k] for k in GEOMETRY})
    videos, labels, info = bench.batch(range(len(bench)))
    generator = torch.Generator(device).manual_seed(seed)
    detectors = {"frame difference": frame_difference_scores,
                 "constant velocity": lambda x: constant_velocity_scores(x, bench.data.config.digit_size)}
    for t_start in t_starts:
        detectors[f"reconstruction t={t_start}"] = lambda x, t_start=t_start: reconstruction_scores(
            task.diffusion, model, x.to(device), t_start, steps, draws, generator=generator).cpu()
    rows = {}
    for name, detector in detectors.items():
        began = time.perf_counter()
        scores = torch.cat([detector(part) for part in videos.split(batch)])
        scores = smooth(zscore(scores) if normalize else scores, window)
        rows[name] = {**evaluate(scores, labels, info["kind"]), "seconds": time.perf_counter() - began}
        print(f"{name}: mean AUROC {rows[name]['mean']['auroc']:.3f} ({rows[name]['seconds']:.1f} s)", flush=True)
    return {"checkpoint": str(ckpt), "n_per_type": n, "frames": bench.frames, "unseen_digit": bench.unseen_digit,
            "checkpoint_saw_unseen_digit": not unseen, "steps": steps, "draws": draws, "zscore": normalize,
            "window": window, "seed": seed, "machine": describe(device), "rows": rows}


def markdown(results: dict) -> str:
    """One row per detector, a column per anomaly type and the mean: AUROC / AP."""
    kinds = [k for k in KINDS if k != "normal"] + ["mean"]
    lines = ["| detector | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for name, row in results["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]['auroc']:.3f} / {row[k]['ap']:.3f}" for k in kinds) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=CHECKPOINT)
    parser.add_argument("--n", type=int, default=64, help="videos per type (normal videos too), default 64")
    parser.add_argument("--t_start", default="50,100,200,400", help="comma-separated steps to noise to")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps back from t_start, default 10")
    parser.add_argument("--draws", type=int, default=2, help="noise draws averaged per video, default 2")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--zscore", action="store_true", help="z-score every detector's scores within each video")
    parser.add_argument("--window", type=int, default=1, help="moving-average window over frames (odd), default 1")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/anomaly.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = run(args.ckpt, args.n, [int(t) for t in args.t_start.split(",")], args.steps, args.draws, args.batch,
                  args.zscore, args.window, torch.device(args.device))
    print(markdown(results))
    if results["checkpoint_saw_unseen_digit"]:
        print(f"note: the checkpoint was trained on every class, {results['unseen_digit']} too: "
              "the unseen_digit column is one more class change, not novelty")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
