"""The temporal-attention experiment of notebook 05: what dense, cross-frame and no temporal attention, and an
image-only model, cost and buy on unconditional Moving MNIST.

    python benchmarks/temporal_attention.py --quality --n 512 --device cuda   # samples and scores
    python benchmarks/temporal_attention.py --cost                            # speed and memory, this machine

The four models are data/checkpoints/temporal_attention/{VARIANT}.pt, each trained by the command in its card
(VARIANT.json), the same preset and steps, only the temporal layers differ. --quality samples n videos from
each (DPM-Solver++, 20 steps) and reads them with the course's evaluator: identity consistency (frames showing
the video's digit), motion error (RMS pixels from the best bouncing constant-velocity motion) and the
Fréchet distances to n real test videos; real test videos are scored the same way as the reference row.
--cost times a training step (forward, MSE, backward, AdamW; batch 8, the models taking turns) and counts the
activations kept for the backward pass. Results are merged into data/checkpoints/temporal_attention.json and
each model's card; the machine of every number is written beside it.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tinyvdm.data import MovingMNIST
from tinyvdm.machine import describe
from tinyvdm.metrics import Evaluator
from tinyvdm.pipelines.sampling import sample
from tinyvdm.train import load_checkpoint, make_optimizer

VARIANTS = ("dense", "cross_frame", "none", "image_only")
FOLDER = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "temporal_attention"
RESULTS = FOLDER.with_suffix(".json")


@torch.no_grad()
def quality(n: int, steps: int, device: torch.device, seed: int = 0) -> dict:
    ev = Evaluator.load(device=device)
    real, _, _ = MovingMNIST(n, split="test", seed=seed).batch(range(n))
    real2, _, _ = MovingMNIST(n, split="test", seed=seed + 1).batch(range(n))
    rows = {"real": {**ev.score(real2), "fvd": ev.fvd(real2, real).value, "fid": ev.fid(real2, real).value}}
    for name in VARIANTS:
        model, config, task = load_checkpoint(FOLDER / f"{name}.pt", device=str(device))
        generator = torch.Generator(device).manual_seed(seed)
        began = time.perf_counter()
        videos = torch.cat([sample(task.diffusion, model, (len(part), *task.video_shape), "dpmpp", steps,
                                   generator=generator, device=device)[0].clamp(-1, 1).cpu()
                            for part in torch.arange(n).split(256)])
        rows[name] = {**ev.score(videos), "fvd": ev.fvd(videos, real).value, "fid": ev.fid(videos, real).value,
                      "sample_s": time.perf_counter() - began}
        print(name, {k: round(v, 4) for k, v in rows[name].items()}, flush=True)
    return {"n": n, "sampler": "dpmpp", "steps": steps, "machine": describe(device), "rows": rows}


def cost(rounds: int, batch: int) -> dict:
    """Seconds per training step (median over rounds, models taking turns) and activation MiB, on this CPU."""
    models = {}
    for name in VARIANTS:
        model, config, task = load_checkpoint(FOLDER / f"{name}.pt")
        models[name] = (model.train(), make_optimizer(config, model), task.video_shape)
    g = torch.Generator().manual_seed(0)
    times, memory = {name: [] for name in VARIANTS}, {}
    for r in range(rounds + 1):  # round 0 warms up
        for name, (model, optimizer, shape) in models.items():
            x = torch.randn(batch, *shape, generator=g)
            t = torch.randint(0, 1000, (batch,), generator=g)
            saved = []

            def pack(tensor):
                saved.append(tensor.untyped_storage().nbytes())
                return tensor

            began = time.perf_counter()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                loss = F.mse_loss(model(x, t), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if r:
                times[name].append(time.perf_counter() - began)
            memory[name] = sum(saved) / 2**20  # an upper bound: a storage shared by two saved tensors counts twice
    params = {name: sum(p.numel() for p in models[name][0].parameters()) for name in VARIANTS}
    return {"batch": batch, "rounds": rounds, "machine": describe("cpu"),
            "rows": {name: {"params": params[name], "train_step_s": statistics.median(times[name]),
                            "activation_mib": memory[name]} for name in VARIANTS}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--n", type=int, default=512, help="videos per model (and real videos), default 512")
    parser.add_argument("--steps", type=int, default=20, help="DPM-Solver++ steps, default 20")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not (args.quality or args.cost):
        parser.error("say what to measure: --quality, --cost or both")
    torch.set_num_threads(args.threads)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.quality:
        results["quality"] = quality(args.n, args.steps, torch.device(args.device))
    if args.cost:
        results["cost"] = cost(args.rounds, args.batch)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for name in VARIANTS:  # each card carries its own model's numbers
        card_path = FOLDER / f"{name}.json"
        card = json.loads(card_path.read_text())
        for part in ("quality", "cost"):
            if part in results:
                card[part] = {k: v for k, v in results[part].items() if k != "rows"} | results[part]["rows"][name]
        card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
