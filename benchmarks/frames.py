"""Frame conditioning and longer videos, measured against Moving MNIST's ground truth.

    python benchmarks/frames.py --export runs/frames --command "..."    # data/checkpoints/frames.pt and its card
    python benchmarks/frames.py --n 200 --ext_n 100 --card              # the issue's bars, into the card
    python benchmarks/frames.py --ckpt runs/frames-tiny/ckpt.pt --n 2 --steps 2 --ext_n 2 --ext_steps 2 --length 12

(a) Interpolation, temporal super-resolution T/2 -> T: n test videos of the frames model's data (16 frames at
1 px per frame); the even frames, an 8-frame video at 2 px per frame (the course's), are given and the odd ones
made by the frames model (`interpolate`), by linear blending of the neighbours (x_{2i} + x_{2i+2}) / 2, and by
nearest-frame repetition x_{2i}. The last frame has no right neighbour: blending repeats x_{T−2} there, and the
model extrapolates it. PSNR (dB, `tinyvdm.metrics.pixels.psnr`) on the odd frames, mean over videos, with and
without the last one; for the model, of one sample and of the mean of --samples samples (an estimate of the
posterior mean E[x^b | x^a], which PSNR rewards over any single plausible sample).

(b) Extension (`tinyvdm.pipelines.extend`): the shipped text-to-video model (8 frames) makes a first window from
the captions of ext_n test videos, then extends it to --length frames (4x its length) window by window, each new
window overlapping the video by --overlap frames, by reconstruction guidance at each weight w_r of --weights and by
the replacement method, from the same first windows and noise. The evaluator reads the digit centres; at each
boundary k (window k's first new frame), `boundary_scores`: consistent (one bouncing motion fits windows k − 1 and
k within 1 px RMS: direction and speed kept), span_error (that RMS), direction_kept (the lenient reading: the new
frames step the way window k − 1's motion continues, speed aside), turn (the centre's velocity jump, pixels)
against turn_within (the same inside windows). consistent_upto[k]: videos consistent at every boundary up to k, as
a function of length (frames[k]). identity: the new frames that show the first window's digit. The "real" row reads
real videos at 2 px per frame, --length frames long, cut into the same windows: the measure's ceiling. --methods
direct adds the row that needs no extension: the net (its layers take any number of frames) asked for all --length
frames in one DDIM run (η --ext_eta), scored at the same boundaries. With --recaption each later window of both
methods is prompted with the first window's digit and the direction read from its overlap (`direction_prompts`),
not the first window's caption: a digit that bounced moves another way than it said. --ext_resample U takes each
DDIM step of a later window U times (RePaint resampling); --ext_candidates K draws each later window K times and
keeps the one `motion_surprise` ranks lowest. --t2v takes another text-to-video checkpoint for the windows, e.g.
one trained longer (`train --preset t2v --init_from data/checkpoints/t2v.pt`).

    python benchmarks/frames.py --only extension --recaption --ext_n 8 --ext_steps 20 --length 32 --weights 8 \
        --threads 1
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tinyvdm.data import MovingMNIST
from tinyvdm.machine import describe
from tinyvdm.metrics import Evaluator
from tinyvdm.metrics.evaluator import fit_bouncing_motion
from tinyvdm.metrics.pixels import psnr
from tinyvdm.pipelines.extend import boundary_scores, direction_prompts, extend, motion_surprise, window_starts
from tinyvdm.pipelines.frames import interpolate
from tinyvdm.pipelines.sampling import sample
from tinyvdm.pipelines.t2v import CHECKPOINT as T2V_CHECKPOINT
from tinyvdm.pipelines.t2v import TextToVideo, caption_prompts
from tinyvdm.train import export_run, load_checkpoint

FRAMES_CHECKPOINT = T2V_CHECKPOINT.with_name("frames.pt")


def interpolation(args, device) -> dict:
    """PSNR of the odd frames: the frames model against linear blending and nearest-frame repetition."""
    model, config, task = load_checkpoint(args.ckpt, device=device)
    options = {k: v for k, v in config.data.items() if k not in ("length", "split", "seed")}
    truth = MovingMNIST(args.n, split="test", seed=args.seed, **options).batch(range(args.n))[0]  # (n, 1, T, H, W)
    given = truth[:, :, ::2]
    right = torch.cat([given[:, :, 1:], given[:, :, -1:]], 2)  # x_{2i+2}; the last repeats x_{T−2}
    generator = torch.Generator(device).manual_seed(args.seed)
    began = time.perf_counter()
    draws = torch.stack([torch.cat([interpolate(task.diffusion, model, given[i:i + args.batch].to(device), factor=2,
                                                sampler=args.sampler, steps=args.steps, generator=generator).cpu()
                                    for i in range(0, args.n, args.batch)]) for _ in range(args.samples)])
    seconds = time.perf_counter() - began
    odd = lambda v: v[:, :, 1::2]
    # one sample is a plausible video; the mean of K estimates E[x^b | x^a], the estimate PSNR rewards
    methods = {"frames model": odd(draws[0]), **({f"frames model, mean of {args.samples} samples": odd(draws.mean(0))}
                                                 if args.samples > 1 else {}),
               "linear blending": (given + right) / 2, "nearest frame": given}
    rows = {name: {"psnr": psnr(v, odd(truth)).mean().item(),
                   "psnr_between": psnr(v[:, :, :-1], odd(truth)[:, :, :-1]).mean().item()}
            for name, v in methods.items()}
    rows["frames model"]["seconds_per_video"] = seconds / args.n / args.samples
    return {"n": args.n, "ckpt": str(args.ckpt), "frames": truth.shape[2], "sampler": args.sampler,
            "steps": args.steps, "samples": args.samples, "rows": rows}


@torch.no_grad()
def extension(args, device) -> dict:
    """Reconstruction guidance (each w_r) against replacement, at --length frames, read by the evaluator."""
    t2v = TextToVideo.load(args.t2v, device=str(device))
    ev = Evaluator.load(device=device)
    window = t2v.video_shape[1]
    prompts, labels = caption_prompts(args.ext_n, seed=args.seed)
    guidance = t2v.best_guidance if args.guidance is None else args.guidance
    ext_guidance = guidance if args.ext_guidance is None else args.ext_guidance
    first = t2v(prompts, guidance, "ddim", args.ext_steps, generator=torch.Generator(device).manual_seed(args.seed))
    ids = t2v.net.tokenizer(prompts).to(device)
    real = MovingMNIST(args.ext_n, split="test", seed=args.seed, frames=args.length).batch(range(args.ext_n))[0]
    rows = {"real": scores(ev, real, window, args.overlap)}
    rows["first window"] = {"prompt_digit": (ev.read(first.cpu())["frame_digits"] == labels["digit"][:, None])
                            .float().mean().item()}
    runs = [(m, w) for m, w in [("replacement", 0.0)] + [("guidance", w) for w in args.weights] if m in args.methods]
    for method, weight in runs:
        generator = torch.Generator(device).manual_seed(args.seed + 1)
        recaption = lambda i: (direction_prompts(t2v.net.tokenizer, labels["digit"][i:i + args.batch])
                               if args.recaption else None)
        began = time.perf_counter()
        videos = torch.cat([extend(t2v.diffusion, t2v.net, first[i:i + args.batch], args.length, args.overlap, method,
                                   weight, args.ext_steps, cond=ids[i:i + args.batch], guidance=ext_guidance,
                                   null_cond=t2v.net.null_ids, generator=generator, prompt_fn=recaption(i),
                                   eta=args.ext_eta, resample=args.ext_resample, candidates=args.ext_candidates,
                                   select=motion_surprise(t2v.diffusion, t2v.net, generator=generator)
                                   if args.ext_candidates > 1 else None).cpu()
                            for i in range(0, args.ext_n, args.batch)])
        name = "replacement" if method == "replacement" else f"guidance w_r={weight:g}"
        rows[name] = scores(ev, videos, window, args.overlap, labels["digit"]) | {
            "seconds_per_video": (time.perf_counter() - began) / args.ext_n}
        print(name, {k: v for k, v in rows[name].items() if not isinstance(v, list)}, flush=True)
    if "direct" in args.methods:  # no extension: the net asked for all --length frames at once
        generator = torch.Generator(device).manual_seed(args.seed + 1)
        C, _, H, W = t2v.video_shape
        began = time.perf_counter()
        videos = torch.cat([sample(t2v.diffusion, t2v.net, (len(cond), C, args.length, H, W), "ddim", args.ext_steps,
                                   cond=cond, guidance=guidance, null_cond=t2v.net.null_ids, eta=args.ext_eta,
                                   generator=generator, device=device)[0].clamp(-1, 1).cpu()
                            for cond in ids.split(args.batch)])
        rows["direct"] = scores(ev, videos, window, args.overlap, labels["digit"]) | {
            "seconds_per_video": (time.perf_counter() - began) / args.ext_n}
        print("direct", {k: v for k, v in rows["direct"].items() if not isinstance(v, list)}, flush=True)
    return {"t2v": str(args.t2v), "n": args.ext_n, "length": args.length, "window": window, "overlap": args.overlap,
            "guidance": guidance, "ext_guidance": ext_guidance, "eta": args.ext_eta, "resample": args.ext_resample,
            "candidates": args.ext_candidates, "steps": args.ext_steps, "recaption": args.recaption,
            "boundary_frames": [s + args.overlap for s in window_starts(args.length, window, args.overlap)[1:]],
            "rows": rows}


def scores(ev: Evaluator, videos: torch.Tensor, window: int, overlap: int, digits=None) -> dict:
    """Boundary scores (per boundary: means over videos; overall: over videos and boundaries), identity (the new
    frames' digit is the first window's), speed (per window: the mean speed, pixels a frame, of the bouncing motion
    fitted to its frames) and prompt_digit (the new frames' digit is `digits` (B,), the prompts')."""
    read = ev.read(videos)
    b = boundary_scores(read["positions"], window, overlap)
    consistent = b["consistent"]
    first_digit = ev.read(videos[:, :, :window])["digit"]
    return {"consistent_all": consistent.all(1).float().mean().item(),
            "consistent_upto": consistent.cummin(1).values.float().mean(0).tolist(),
            "consistent": consistent.float().mean(0).tolist(),
            "span_error": b["span_error"].mean(0).tolist(),
            "direction_kept_all": b["direction_kept"].all(1).float().mean().item(),
            "direction_kept": b["direction_kept"].float().mean(0).tolist(),
            "turn": b["turn"].mean(0).tolist(), "turn_boundary": b["turn"].mean().item(),
            "turn_within": b["turn_within"].mean().item(),
            "identity": (read["frame_digits"][:, window:] == first_digit[:, None]).float().mean().item(),
            "speed": [fit_bouncing_motion(read["positions"][:, k:k + window])["speed"].mean().item()
                      for k in window_starts(videos.shape[2], window, overlap)]} | \
        ({} if digits is None else {"prompt_digit": (read["frame_digits"][:, window:] == digits[:, None]).float()
                                    .mean().item()})


def table(results: dict) -> str:
    lines = []
    if "interpolation" in results:
        lines += ["| interpolation | PSNR (odd frames) | PSNR (between known frames) |", "|---|---|---|"]
        lines += [f"| {k} | {r['psnr']:.2f} | {r['psnr_between']:.2f} |"
                  for k, r in results["interpolation"]["rows"].items()]
    if "extension" in results:
        ext = results["extension"]
        later = ext.get("ext_guidance", ext["guidance"])
        lines += ["", f"extension to {ext['length']} frames, n = {ext['n']}, overlap {ext['overlap']}, {ext['steps']} "
                  f"DDIM steps (eta {ext.get('eta', 0):g}, each taken {ext.get('resample', 1)} times, "
                  f"the least surprising of {ext.get('candidates', 1)} kept), "
                  f"guidance {ext['guidance']:g} (later windows {later:g}), "
                  f"recaption {ext['recaption']} (boundaries at frames {ext['boundary_frames']}):", "",
                  "| method | consistent at every boundary | consistent per boundary | direction kept at every "
                  "boundary | turn at boundaries | turn within windows | speed: first window, later ones | identity | "
                  "prompt's digit |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {k} | {r['consistent_all']:.3f} | {sum(r['consistent']) / len(r['consistent']):.3f} | "
                  f"{r['direction_kept_all']:.3f} | {r['turn_boundary']:.2f} | {r['turn_within']:.2f} | "
                  f"{r['speed'][0]:.2f}, {sum(r['speed'][1:]) / len(r['speed'][1:]):.2f} | {r['identity']:.3f} | "
                  f"{r.get('prompt_digit', float('nan')):.3f} |"
                  for k, r in ext["rows"].items() if "consistent" in r]
        if "first window" in ext["rows"]:
            lines += ["", f"first window: prompt's digit {ext['rows']['first window']['prompt_digit']:.3f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    numbers = lambda cast: lambda text: [cast(v) for v in text.split(",")]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=FRAMES_CHECKPOINT,
                        help="a 'frames' task checkpoint (default: the shipped one; --export writes it)")
    parser.add_argument("--n", type=int, default=200, help="test videos to interpolate")
    parser.add_argument("--sampler", default="ddim")
    parser.add_argument("--steps", type=int, default=50, help="sampler steps of the interpolation")
    parser.add_argument("--samples", type=int, default=4, help="interpolations per video (their mean is a row too)")
    parser.add_argument("--ext_n", type=int, default=100, help="videos to extend")
    parser.add_argument("--ext_steps", type=int, default=50, help="DDIM steps of each window")
    parser.add_argument("--length", type=int, default=32, help="frames of the extended videos")
    parser.add_argument("--overlap", type=int, default=4)
    parser.add_argument("--weights", type=numbers(float), default=[4.0, 8.0, 16.0], help="reconstruction guidance w_r")
    parser.add_argument("--methods", type=numbers(str), default=["replacement", "guidance"],
                        help="extension methods to run (guidance: at each of --weights), and direct: all --length "
                             "frames in one window, no extension")
    parser.add_argument("--t2v", type=Path, default=T2V_CHECKPOINT,
                        help="the text-to-video checkpoint that makes the windows (default: the shipped one)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance (default: the card's beside --t2v, 3 without one)")
    parser.add_argument("--ext_guidance", type=float, default=None,
                        help="classifier-free guidance of the later windows (default: --guidance)")
    parser.add_argument("--ext_eta", type=float, default=0.0, help="DDIM eta of the later windows")
    parser.add_argument("--ext_resample", type=int, default=1, help="times each DDIM step of a later window is taken")
    parser.add_argument("--ext_candidates", type=int, default=1,
                        help="draws of each later window; the one motion_surprise ranks lowest is kept")
    parser.add_argument("--recaption", action="store_true", help="prompt each window with the direction of its overlap")
    parser.add_argument("--only", choices=("interpolation", "extension"), default=None, help="run one part")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/frames_bench.json"))
    parser.add_argument("--export", type=Path, metavar="RUN", help="only write the shipped frames model and its card")
    parser.add_argument("--command", default="python -m tinyvdm train --preset frames --threads 2",
                        help="the run's command (card)")
    parser.add_argument("--card", action="store_true", help="also write the results into the checkpoint's card")
    args = parser.parse_args(argv)
    if set(args.methods) - {"replacement", "guidance", "direct"}:
        parser.error(f"--methods takes replacement, guidance and/or direct, got {','.join(args.methods)}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    card_path = args.ckpt.with_suffix(".json")
    if args.export:
        card = export_run(args.export, args.ckpt, "masked frame conditioning (tinyvdm.pipelines.frames): UNet3D on x_t "
                          "next to the known frames and their mask, trained on random generation / prediction / "
                          "interpolation masks over 16 frames at 1 px per frame; EMA weights in fp16",
                          args.command)
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote {args.ckpt} and {card_path}")
        return card
    results = {"machine": describe(device), "seed": args.seed}
    for part, run in (("interpolation", interpolation), ("extension", extension)):
        if args.only in (None, part):
            results[part] = run(args, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.card:
        card = json.loads(card_path.read_text()) if card_path.exists() else {}
        card_path.write_text(json.dumps(card | {"benchmark": results}, indent=2) + "\n")
    print(table(results))
    return results


if __name__ == "__main__":
    main()
