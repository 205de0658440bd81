"""What the shipped text-to-video model is worth, measured with the course's evaluator, into its card.

    python benchmarks/t2v_quality.py --export runs/t2v          # data/checkpoints/t2v.pt + card from the run
    python benchmarks/t2v_quality.py --curve runs/t2v/snapshots  # caption accuracy against training minutes
    python benchmarks/t2v_quality.py --sweep                     # guidance scale: fidelity against diversity
    python benchmarks/t2v_quality.py --samplers                  # samplers at equal NFE, and 1000-step ancestral

Prompts are `caption_prompts(n)`: captions of test-split videos (test digits' labels), half of them in the two
phrasings held out of training. Fidelity is caption accuracy (the evaluator reads the digit and the direction of
each generated video); diversity is the mean pairwise RMS distance (pixels in [-1, 1]) between the K videos
generated for the same prompt, next to the same distance between real test videos that share a caption's digit
and direction; the FVD-style distance is to as many real test videos. Every part writes the machine it ran on.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch

from tinyvdm.data import MovingMNIST
from tinyvdm.machine import describe
from tinyvdm.metrics import Evaluator
from tinyvdm.pipelines.t2v import CHECKPOINT, TextToVideo, caption_accuracy
from tinyvdm.train import export_run, load_checkpoint

CARD = CHECKPOINT.with_suffix(".json")


def export(run: Path, command: str) -> dict:
    """The run's EMA weights as the shipped checkpoint, and the card's account of how they were made. int8 with a
    scale per output channel keeps the file under the course's 6 MB a file (fp16 was 8.2 MB)."""
    return export_run(run, CHECKPOINT, "text-to-video on captioned Moving MNIST (tinyvdm.pipelines.t2v): caption "
                      "encoder + UNet3D, trained with caption dropout for classifier-free guidance; EMA weights in "
                      "int8 (a scale per output channel), the rest in fp16", command, weights="int8")


def curve(folder: Path, n: int, guidance: float, device: torch.device, ev: Evaluator) -> dict:
    points = []
    for snapshot in sorted(folder.glob("step_*.pt")):
        state = torch.load(snapshot, map_location="cpu", weights_only=True)
        net, _, task = load_checkpoint(snapshot, device=str(device))
        scores, _ = caption_accuracy(TextToVideo(net, task.diffusion, task.video_shape), ev, n=n, guidance=guidance,
                                     batch=256)
        points.append({"step": state["step"], "minutes": round(state["wall_s"] / 60, 2), **scores})
        print("curve", points[-1]["step"], points[-1]["minutes"], round(scores["digit_acc"], 3),
              round(scores["direction_acc"], 3), flush=True)
    return {"n": n, "guidance": guidance, "sampler": "dpmpp", "steps": 20, "measured_on": describe(device),
            "points": points}


def within_prompt_distance(videos: torch.Tensor, k: int) -> float:
    """Mean RMS distance between the k videos of each prompt; videos (P*k, ...) ordered prompt by prompt."""
    groups = videos.flatten(1).reshape(-1, k, videos[0].numel())
    pairs = list(itertools.combinations(range(k), 2))
    return torch.stack([(groups[:, i] - groups[:, j]).square().mean(-1).sqrt() for i, j in pairs]).mean().item()


def real_diversity(k: int, pool: int = 4000, seed: int = 0) -> float:
    """The same distance between real test videos of the same digit and direction (k per caption)."""
    videos, _, labels = MovingMNIST(pool, split="test", seed=seed).batch(range(pool))
    key = labels["digits"][:, 0] * 8 + labels["direction"][:, 0]
    groups = [videos[key == c][:k] for c in key.unique() if (key == c).sum() >= k]
    return within_prompt_distance(torch.cat(groups), k)


def sweep(t2v: TextToVideo, ev: Evaluator, prompts: int, k: int, scales, device: torch.device) -> dict:
    """For each guidance scale: k videos for each of `prompts` prompts; accuracy, diversity, FVD."""
    real, _, _ = MovingMNIST(prompts * k, split="test", seed=1).batch(range(prompts * k))
    rows = []
    for w in scales:
        scores, videos = caption_accuracy(t2v, ev, n=prompts, guidance=w, per_prompt=k, batch=prompts * k)
        rows.append({**scores, "diversity": within_prompt_distance(videos, k), "fvd": ev.fvd(videos, real).value})
        print("sweep", {key: round(v, 3) for key, v in rows[-1].items() if isinstance(v, float)}, flush=True)
    return {"prompts": prompts, "per_prompt": k, "n": prompts * k, "sampler": "dpmpp", "steps": 20,
            "real_diversity": real_diversity(k), "measured_on": describe(device), "rows": rows}


SAMPLER_RUNS = "ancestral:1000,dpmpp:20,dpmpp_sde:20,dpmpp:10,ddim:20,euler_maruyama:20,pc:10,ode:10"


def samplers(t2v: TextToVideo, ev: Evaluator, n: int, guidance: float, device: torch.device,
             runs: str = SAMPLER_RUNS, batch: int = 512, cache: Path | None = None) -> dict:
    """Caption accuracy and FVD of each sampler at 20 model calls, and of the 1000-step ancestral chain.
    `cache`: `caption_accuracy`'s, so that a stopped run goes on from its last batch (seconds: of sampling)."""
    real, _, _ = MovingMNIST(n, split="test", seed=1).batch(range(n))
    runs = [(name, int(steps)) for name, steps in (run.split(":") for run in runs.split(","))]
    rows = []
    for sampler, steps in runs:
        scores, videos = caption_accuracy(t2v, ev, n=n, guidance=guidance, sampler=sampler, steps=steps, batch=batch,
                                          cache=cache)
        rows.append({**scores, "fvd": ev.fvd(videos, real).value})
        print("sampler", sampler, steps, {key: round(v, 3) if isinstance(v, float) else v
                                          for key, v in rows[-1].items()}, flush=True)
    return {"n": n, "guidance": guidance, "measured_on": describe(device), "rows": rows}


def merge_samplers(old: dict | None, new: dict) -> dict:
    """The sampler table with `new`'s rows added to `old`'s (same n and guidance), a re-measured row replaced."""
    if not old or (old["n"], old["guidance"]) != (new["n"], new["guidance"]):
        return new
    rows = {(r["sampler"], r["steps"]): r for r in old["rows"]} | {(r["sampler"], r["steps"]): r for r in new["rows"]}
    measured_on = sorted({old["measured_on"], new["measured_on"]})
    return {**new, "measured_on": " / ".join(measured_on), "rows": list(rows.values())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, metavar="RUN", help="write the checkpoint and card from this run")
    parser.add_argument("--command", default="python -m tinyvdm train --preset t2v",
                        help="the command that trained the run, for the card")
    parser.add_argument("--curve", type=Path, metavar="SNAPSHOTS", help="evaluate the run's snapshots")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--samplers", action="store_true")
    parser.add_argument("--n", type=int, default=512, help="videos per curve point and per sampler")
    parser.add_argument("--prompts", type=int, default=128, help="sweep: prompts, each sampled --k times")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--scales", default="0,1,2,3,4,5,7,10")
    parser.add_argument("--guidance", type=float, default=None,
                        help="scale of the curve and the sampler table (default: the sweep's best, else 3)")
    parser.add_argument("--runs", default=SAMPLER_RUNS, help="the sampler table's sampler:steps pairs")
    parser.add_argument("--batch", type=int, default=512, help="sampler table: videos per batch")
    parser.add_argument("--cache", type=Path, help="sampler table: keep each batch here, and go on from them")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    card = json.loads(CARD.read_text()) if CARD.exists() else {}
    new = export(args.export, args.command) if args.export else {}
    ev = Evaluator.load(device=device)
    if args.sweep:
        new["guidance_sweep"] = sweep(TextToVideo.load(device=str(device)), ev, args.prompts, args.k,
                                      [float(s) for s in args.scales.split(",")], device)
        new["best_guidance"] = max(new["guidance_sweep"]["rows"], key=lambda r: r["both_acc"])["guidance"]
    guidance = args.guidance or new.get("best_guidance", card.get("best_guidance", 3.0))
    if args.curve:
        new["curve"] = curve(args.curve, args.n, guidance, device, ev)
    if args.samplers:
        new["samplers"] = samplers(TextToVideo.load(device=str(device)), ev, args.n, guidance, device, args.runs,
                                  args.batch, args.cache)
    # a new export starts a new card (the old measurements were of other weights), but for the curve, which was
    # measured on the run's snapshots, when the run is the same; parts run as separate processes merge into the
    # card as it is when they finish
    same_run = args.export and "curve" in card and json.dumps([card["steps"], card["config"]]) == json.dumps(
        [new["steps"], new["config"]])  # as JSON: the card's lists are the checkpoint's tuples
    card = (new | ({"curve": card["curve"]} if same_run else {})) if args.export else json.loads(CARD.read_text())
    if "samplers" in new and not args.export:
        new["samplers"] = merge_samplers(card.get("samplers"), new["samplers"])
    card |= new
    CARD.write_text(json.dumps(card, indent=2) + "\n")
    return card


if __name__ == "__main__":
    main()
