"""What the cascade base → TSR → SSR is worth, stage by stage and whole, measured against Moving MNIST's truth.

    python benchmarks/cascade.py --n 200 --threads 2 --out cascade.json     # the shipped stages
    python benchmarks/cascade.py --export runs/tsr                          # data/checkpoints/tsr.pt + its card

1. Each stage alone on test-split ground truth x (Moving MNIST has it at every size and frame rate): PSNR / SSIM
   of stage(down(x)) against x, next to its input up(down(x)) (bilinear per frame; frames repeated). For TSR also
   on the inserted (odd) frames alone, the ones it has to invent.
2. Noise-conditioning augmentation sweep on GENERATED inputs, where it matters: the base model's videos for
   `caption_prompts(n)` into TSR at each level s, and TSR's videos (at s = 0.2) into SSR at each level s; the
   evaluator's digit / direction accuracy against the prompts and the FVD-style distance to real videos.
3. SSR against plain upsampling (bilinear per frame; the frame count is already right, so this is trilinear
   upsampling) of the same generated videos, at 64×64. The evaluator reads frames at 32×32 and cannot see what
   SSR adds, so the comparison is the patch Fréchet distance (`tinyvdm.metrics.pixels.patch_frechet`: Gaussians
   fitted to raw 2×8×8 space-time patches at full size) to real 64×64 videos; the evaluator's FVD is given too.
4. The whole cascade's digit and direction accuracy against the base stage's, on the same prompts and the very
   base videos the cascade started from (the bar: ≥ 90% of the base's).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tinyvdm.data import MovingMNIST
from tinyvdm.machine import describe
from tinyvdm.metrics import Evaluator, patch_frechet, psnr, ssim
from tinyvdm.metrics.evaluator import score_readings
from tinyvdm.pipelines.cascade import CHECKPOINTS, SHIPPED, load_stage
from tinyvdm.pipelines.frames import Interpolation
from tinyvdm.pipelines.superres import KINDS, SuperResolution, downsample, upsample
from tinyvdm.pipelines.t2v import CHECKPOINT as BASE_CHECKPOINT
from tinyvdm.pipelines.t2v import TextToVideo, caption_prompts
from tinyvdm.train import config_from_dict, export_run, read_checkpoint

LEVELS = (0.0, 0.1, 0.2, 0.3, 0.5)
DEFAULT_LEVEL = 0.2


def export(run: Path, command: str) -> Path:
    """A stage run's EMA weights in fp16 as the shipped checkpoint, with a card saying how they were made."""
    name = read_checkpoint(run / "ckpt.pt")["config"]["task"]
    if name not in CHECKPOINTS:
        raise SystemExit(f"error: {run} trained a {name!r} model, not a cascade stage {sorted(CHECKPOINTS)}")
    card = export_run(run, CHECKPOINTS[name], f"{name} stage of the cascade (tinyvdm.pipelines.superres): UNet3D on "
                      "x_t concatenated with the upsampled low-resolution video, trained with noise-conditioning "
                      "augmentation; EMA weights in fp16", command)
    stage = SuperResolution.load(CHECKPOINTS[name])
    card["shapes"] = {"in": list(stage.in_shape), "out": list(stage.out_shape)}
    CHECKPOINTS[name].with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return CHECKPOINTS[name]


def in_batches(stage, videos: torch.Tensor, batch: int, seed: int, **options) -> tuple[torch.Tensor, float]:
    """stage(videos) chunk by chunk from one generator; (outputs, seconds per video)."""
    generator = torch.Generator().manual_seed(seed)
    began = time.perf_counter()
    out = torch.cat([stage(part, generator=generator, **options).cpu() for part in videos.split(batch)])
    return out, (time.perf_counter() - began) / len(videos)


def kind_and_factor(stage, config) -> tuple[str, int]:
    """What a stage adds ("spatial" or "temporal") and by what factor: a super-resolution model or an interpolation."""
    if isinstance(stage, Interpolation):
        return "temporal", stage.factor
    return KINDS[config.task], config.diffusion["factor"]


def level(stage, s: float) -> dict:
    """The augmentation level option of a stage that has one (an interpolation keeps its given frames exactly)."""
    return {"aug_level": s} if isinstance(stage, SuperResolution) else {}


def against_truth(stage, config, n: int, batch: int, seed: int, options: dict) -> dict:
    """PSNR / SSIM of stage(down(x)) and of up(down(x)) against test-split truth x."""
    kind, factor = kind_and_factor(stage, config)
    x = MovingMNIST(**{**config.data, "split": "test", "seed": seed, "length": n}).batch(range(n))[0]
    low = downsample(x, kind, factor)
    made, seconds = in_batches(stage, low, batch, seed, **level(stage, DEFAULT_LEVEL), **options)
    rows = {"stage": made, "upsampled input": upsample(low, x.shape[2:])}
    result = {"n": n, **level(stage, DEFAULT_LEVEL), "seconds_per_video": round(seconds, 3)}
    for method, v in rows.items():
        result[method] = {"psnr": psnr(v, x).mean().item(), "ssim": ssim(v, x).mean().item()}
        if kind == "temporal":
            result[method] |= {"psnr_inserted": psnr(v[:, :, 1::2], x[:, :, 1::2]).mean().item(),
                               "ssim_inserted": ssim(v[:, :, 1::2], x[:, :, 1::2]).mean().item()}
    return result


def generated_scores(ev: Evaluator, videos: torch.Tensor, labels: dict, real: torch.Tensor) -> dict:
    """The evaluator's reading against the prompts, its FVD to real videos, and the patch FD at full size."""
    scores = score_readings(ev.read(videos), labels["digit"], labels["direction"])
    return scores | {"fvd": ev.fvd(videos, real).value, "patch_fd": patch_frechet(videos, real).value}


def real_videos(config, n: int, seed: int) -> torch.Tensor:
    return MovingMNIST(**{**config.data, "split": "test", "seed": seed, "length": n}).batch(range(n))[0]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="videos per measurement (prompts, truth, real)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("cascade.json"), help="the JSON to write")
    parser.add_argument("--base", type=Path, default=BASE_CHECKPOINT)
    parser.add_argument("--tsr", type=Path, default=SHIPPED["tsr"], help="default: the frames model")
    parser.add_argument("--ssr", type=Path, default=SHIPPED["ssr"])
    parser.add_argument("--sampler", default="dpmpp", help="every stage's sampler")
    parser.add_argument("--steps", type=int, default=20, help="every stage's sampler steps")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="augmentation levels s of the sweep")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", type=Path, metavar="RUN", help="only export this stage run and its card")
    parser.add_argument("--command", default="python -m tinyvdm train --preset ssr --threads 2",
                        help="the command that trained the exported run, for its card")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.export:
        path = export(args.export, args.command)
        print(f"wrote {path} and {path.with_suffix('.json')}")
        return {}
    began = time.perf_counter()
    levels = [float(s) for s in args.levels.split(",")]
    sampling = {"sampler": args.sampler, "steps": args.steps}
    ev = Evaluator.load()
    t2v = TextToVideo.load(args.base)
    stages, configs = {}, {}
    for name in ("tsr", "ssr"):
        path = getattr(args, name)
        stages[name] = load_stage(path, name)
        configs[name] = config_from_dict(read_checkpoint(path, resumable=False)["config"])
    report = {"machine": describe("cpu"), "threads": args.threads, "n": args.n, "sampling": sampling,
              "base_guidance": t2v.best_guidance,
              "checkpoints": {"base": str(args.base), "tsr": str(args.tsr), "ssr": str(args.ssr)}}

    report["against_truth"] = {name: against_truth(stages[name], configs[name], args.n, args.batch, args.seed,
                                                   sampling) for name in stages}
    print(json.dumps(report["against_truth"], indent=1), flush=True)

    prompts, labels = caption_prompts(args.n, args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    base = torch.cat([t2v(prompts[i:i + args.batch], sampler=args.sampler, steps=args.steps, generator=generator)
                      for i in range(0, args.n, args.batch)])
    real = {name: real_videos(configs[name], args.n, args.seed + 1) for name in stages}
    base_real = downsample(real["tsr"], *kind_and_factor(stages["tsr"], configs["tsr"]))
    report["base"] = generated_scores(ev, base, labels, base_real)

    sweep = {"tsr": [], "ssr": []}
    outputs = {}
    for s in levels if isinstance(stages["tsr"], SuperResolution) else [DEFAULT_LEVEL]:  # interpolation: no level
        outputs["tsr", s], seconds = in_batches(stages["tsr"], base, args.batch, args.seed, **level(stages["tsr"], s),
                                                **sampling)
        sweep["tsr"].append({**level(stages["tsr"], s), "seconds_per_video": round(seconds, 3),
                             **generated_scores(ev, outputs["tsr", s], labels, real["tsr"])})
        print("tsr", sweep["tsr"][-1], flush=True)
    tsr_out = outputs.get(("tsr", DEFAULT_LEVEL))
    if tsr_out is None:
        tsr_out, _ = in_batches(stages["tsr"], base, args.batch, args.seed, **level(stages["tsr"], DEFAULT_LEVEL),
                                **sampling)
    for s in levels:
        outputs["ssr", s], seconds = in_batches(stages["ssr"], tsr_out, args.batch, args.seed, aug_level=s,
                                                **sampling)
        sweep["ssr"].append({"aug_level": s, "seconds_per_video": round(seconds, 3),
                             **generated_scores(ev, outputs["ssr", s], labels, real["ssr"])})
        print("ssr", sweep["ssr"][-1], flush=True)
    report["augmentation_sweep"] = {"input": "generated: base videos of caption_prompts(n) into TSR; TSR's videos "
                                             f"at s = {DEFAULT_LEVEL} into SSR", **sweep}

    final = outputs.get(("ssr", DEFAULT_LEVEL))
    if final is None:
        final, _ = in_batches(stages["ssr"], tsr_out, args.batch, args.seed, aug_level=DEFAULT_LEVEL, **sampling)
    plain = upsample(tsr_out, stages["ssr"].out_shape[1:])
    report["ssr_vs_upsampling"] = {
        "size": list(stages["ssr"].out_shape), "aug_level": DEFAULT_LEVEL,
        "ssr": generated_scores(ev, final, labels, real["ssr"]),
        "upsampled": generated_scores(ev, plain, labels, real["ssr"]),
        "real_vs_real": {"patch_fd": patch_frechet(real_videos(configs["ssr"], args.n, args.seed + 2),
                                                   real["ssr"]).value}}
    cascade = report["ssr_vs_upsampling"]["ssr"]
    report["cascade_vs_base"] = {
        "base": {k: report["base"][k] for k in ("digit_acc", "direction_acc")},
        "cascade": {k: cascade[k] for k in ("digit_acc", "direction_acc")},
        "kept": {k: cascade[k] / max(report["base"][k], 1e-12) for k in ("digit_acc", "direction_acc")}}
    report["wall_s"] = round(time.perf_counter() - began, 1)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("ssr_vs_upsampling", "cascade_vs_base")}, indent=1))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
