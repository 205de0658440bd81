"""Latent against pixel video diffusion (Video LDM), measured on the same prompts, evaluator and machine.

    python benchmarks/latent.py --export          # runs/autoencoder-temporal -> data/checkpoints/autoencoder.pt + card
    python benchmarks/latent.py --parts compute,autoencoder,quality --n 256 --threads 2
                                                  # -> data/checkpoints/latent.json

compute      training FLOPs of one step of each run (forward and backward of the task's loss, the frozen encoder's
             forward included; torch.utils.flop_counter) times its steps; its wall time from its checkpoint (runs
             that shared the CPU with other jobs ran slower), and --time_steps steps of each timed back to back here,
             times its steps. The latent model's cost is given alone and with its autoencoder's two runs, against t2v's.
autoencoder  n test videos through the autoencoder: the evaluator's digit accuracy on the reconstructions (and on the
             originals, the ceiling), PSNR, and flicker mean |Δ_t x̂ − Δ_t x|² with the temporal decoder and with
             per-frame decoding (image_mode), from the same latents: μ(x), and μ(x) + σ ε with σ = 0.1, 0.2.
quality      caption accuracy (digit, direction, both) and FVD of the shipped pixel t2v and the latent t2v run on the
             same n prompts (half in held-out phrasings), guidance --guidance, DPM-Solver++ --steps; seconds per video.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from tinyvdm.data import MovingMNIST
from tinyvdm.machine import describe
from tinyvdm.metrics import Evaluator
from tinyvdm.metrics.pixels import psnr
from tinyvdm.models.autoencoder import flicker
from tinyvdm.pipelines.t2v import CHECKPOINT as T2V_CHECKPOINT
from tinyvdm.pipelines.t2v import TextToVideo, caption_accuracy
from tinyvdm.train import build_task, export_run, get_preset, load_checkpoint, read_checkpoint
from train_step import _count_flops  # benchmarks/train_step.py: a script run from benchmarks/ has it on its path

CARD = T2V_CHECKPOINT.with_name("latent.json")
AUTOENCODER = T2V_CHECKPOINT.with_name("autoencoder.pt")
AUTOENCODER_COMMAND = ("python -m tinyvdm train --preset autoencoder --threads 2 && "
                       "python -m tinyvdm train --preset autoencoder-temporal --threads 2")
RUNS = {"pixel": ["t2v"], "latent": ["autoencoder", "autoencoder-temporal", "latent-t2v"]}


def step_cost(preset: str, changes: dict, repeats: int) -> tuple[int, float]:
    """FLOPs of one training step of `preset` (its loss's forward and backward), and the median seconds of `repeats`
    such steps with the optimizer's update (after the counted one, which warms up)."""
    config = get_preset(preset)
    config = replace(config, **{k: config.model | v if k == "model" else v for k, v in changes.get(preset, {}).items()})
    task = build_task(config)
    optimizer = torch.optim.AdamW([p for p in task.model.parameters() if p.requires_grad], lr=1e-4)

    def step(batch) -> float:
        began = time.perf_counter()
        task.loss_fn(task.model, batch, torch.Generator().manual_seed(0)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - began

    flops = _count_flops(lambda: step(task.batch_fn(0)))  # the counted step warms up
    seconds = statistics.median(step(task.batch_fn(i + 1)) for i in range(repeats)) if repeats else float("nan")
    return flops, seconds


def compute(args) -> dict:
    """Training compute (PFLOP) and wall time of each run; the latent pipeline's against the pixel model's."""
    runs = {"t2v": T2V_CHECKPOINT, **{name: args.runs / name / "ckpt.pt" for name in RUNS["latent"]}}
    changes = {"latent-t2v": {"model": {"autoencoder": str(runs["autoencoder-temporal"])}},
               "autoencoder-temporal": {"init_from": None}}
    rows = {}
    for name, ckpt in runs.items():
        state = read_checkpoint(ckpt, resumable=False)
        flops, seconds = step_cost(name, changes, args.time_steps)
        rows[name] = {"gflop_per_step": flops / 1e9, "steps": state["step"], "pflop": flops * state["step"] / 1e15,
                      "train_wall_s": round(state["wall_s"], 1), "threads": state["config"]["threads"],
                      "step_s_now": seconds, "train_s_now": seconds * state["step"]}
        print(name, rows[name], flush=True)
    pixel = rows["t2v"]["pflop"]
    latent = rows["latent-t2v"]["pflop"]
    with_ae = sum(rows[name]["pflop"] for name in RUNS["latent"])
    seconds = lambda key, names: sum(rows[n][key] for n in names)  # noqa: E731
    return {"rows": rows, "latent_over_pixel": latent / pixel, "latent_with_autoencoder_over_pixel": with_ae / pixel,
            "wall_latent_with_autoencoder_over_pixel":
                seconds("train_wall_s", RUNS["latent"]) / rows["t2v"]["train_wall_s"],
            "timed_now_latent_with_autoencoder_over_pixel":
                seconds("train_s_now", RUNS["latent"]) / rows["t2v"]["train_s_now"]}


@torch.no_grad()
def autoencoder(args, ev: Evaluator) -> dict:
    """Reconstruction of n test videos: digit accuracy, PSNR, flicker of the temporal and the per-frame decoder, from
    the latents μ(x) and from latents perturbed frame by frame, μ(x) + σ ε
    (what a diffusion model's samples are like)."""
    ae = load_checkpoint(AUTOENCODER)[0]
    videos, _, labels = MovingMNIST(args.n, split="test", seed=args.seed).batch(range(args.n))
    digits = labels["digits"][:, 0]
    z = torch.cat([ae.encode(videos[i:i + 64]).mean for i in range(0, args.n, 64)])
    generator = torch.Generator().manual_seed(args.seed)
    rows = {"original": {"digit_acc": (ev.read(videos)["digit"] == digits).float().mean().item()}}
    for sigma in (0.0, 0.1, 0.2):
        z_sigma = z + sigma * torch.randn(z.shape, generator=generator)
        for mode in ("temporal", "per_frame"):
            x_hat = torch.cat([ae.decode(z_sigma[i:i + 64], image_mode=mode == "per_frame").clamp(-1, 1)
                               for i in range(0, args.n, 64)])
            rows[mode if not sigma else f"{mode}, latent noise {sigma:g}"] = {
                "digit_acc": (ev.read(x_hat)["digit"] == digits).float().mean().item(),
                "psnr": psnr(x_hat, videos).mean().item(), "flicker": flicker(x_hat, videos).item()}
    print(json.dumps(rows, indent=1), flush=True)
    return {"n": args.n, "rows": rows, "latent_std": z.std().item(), "latent_shape": list(z.shape[1:]),
            "video_shape": list(videos.shape[1:])}


def quality(args, ev: Evaluator) -> dict:
    """The pixel and the latent text-to-video models on the same prompts: caption accuracy, FVD, seconds a video."""
    real = MovingMNIST(args.n, split="test", seed=1).batch(range(args.n))[0]
    rows = {}
    for name, path in (("pixel", T2V_CHECKPOINT), ("latent", args.runs / "latent-t2v" / "ckpt.pt")):
        t2v = TextToVideo.load(path)
        began = time.perf_counter()
        scores, videos = caption_accuracy(t2v, ev, n=args.n, guidance=args.guidance, sampler="dpmpp", steps=args.steps,
                                          seed=args.seed, batch=args.batch)
        seconds = time.perf_counter() - began
        rows[name] = {**scores, "fvd": ev.fvd(videos, real).value, "seconds_per_video": seconds / args.n,
                      "denoised_shape": list(t2v.video_shape)}
        print(name, {k: round(v, 4) if isinstance(v, float) else v for k, v in rows[name].items()}, flush=True)
    return {"n": args.n, "guidance": args.guidance, "sampler": "dpmpp", "steps": args.steps, "rows": rows,
            "digit_points_behind": 100 * (rows["pixel"]["digit_acc"] - rows["latent"]["digit_acc"])}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", action="store_true", help="only ship runs/autoencoder-temporal and its card")
    parser.add_argument("--parts", default="compute,autoencoder,quality")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder of the autoencoder and latent runs")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--time_steps", type=int, default=10, help="compute: training steps of each run to time")
    parser.add_argument("--guidance", type=float, default=7.0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=CARD)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export:
        run = args.runs / "autoencoder-temporal"
        card = export_run(run, AUTOENCODER, "the latent video diffusion's autoencoder (tinyvdm.models.autoencoder): "
                          "frames trained alone, then its temporal decoder layers against flicker; EMA weights in fp16",
                          AUTOENCODER_COMMAND)
        first = read_checkpoint(args.runs / "autoencoder" / "ckpt.pt")  # the first run's cost, for the card
        card |= {"first_run": {"steps": first["step"], "train_wall_s": round(first["wall_s"], 1)}}
        AUTOENCODER.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        return card
    ev = Evaluator.load()
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    parts = {"compute": lambda: compute(args), "autoencoder": lambda: autoencoder(args, ev),
             "quality": lambda: quality(args, ev)}
    for part in args.parts.split(","):
        report[part] = parts[part]() | {"measured_on": describe("cpu"), "threads": torch.get_num_threads()}
        args.out.write_text(json.dumps(report, indent=2) + "\n")  # after every part
    return report


if __name__ == "__main__":
    main()
