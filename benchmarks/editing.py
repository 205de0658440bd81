"""Training-free video editing with the shipped text-to-video model, measured against Moving MNIST's ground truth.

    python benchmarks/editing.py --n 100 --device cuda     # the issue's bar: 100 videos per edit
    python benchmarks/editing.py --n 4 --steps 6 --out runs/editing.json     # a quick look on a CPU

Sources are n test-split videos with their exact digit, direction and positions; each is edited three ways,
prompts in the first phrasing ("the digit 3 moves left" -> "the digit 8 moves left"): change the digit (to
another, drawn per video), change the direction (to the opposite), change both. Methods (tinyvdm.pipelines.editing):
SDEdit at a few strengths; DDIM inversion, then regeneration under the target prompt with the source's self- and
temporal-attention maps injected while t > τ (τ = N − 1: none); SDEdit frame by frame in image mode, without and
with cross-frame keys and values, each with independent noise in every frame and with Text2Video-Zero's shared noise
moved with the source digit (`warped_noise`). Scores are means over the videos, read by the course's evaluator
(`edit_scores` in tinyvdm.pipelines.editing):

    edit_success    the target digit and the target direction both read
    digit_acc, direction_acc
    traj_error      mean distance (pixels) of the read digit centres from the target trajectory: the source's when
                    the direction is kept, else the digit from the same start moving the new way
    within_2px      fraction of videos with traj_error <= 2
    identity        frames showing the video's digit (identity_consistency)
    flicker         mean |crop_{t+1} - crop_t| of digit-sized crops following the read centres (motion taken out)
    seconds         wall time per video

The source videos are scored the same way against each edit's targets (the "source" row: no edit at all). Last,
the reconstruction error (RMS, pixels in [-1, 1]) of inversion + regeneration without an edit, against DDIM steps.
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
from tinyvdm.pipelines.editing import EDITS, VideoEditor, edit_prompts, edit_scores, edit_targets, reconstruct
from tinyvdm.pipelines.t2v import CHECKPOINT, TextToVideo

RESULTS = CHECKPOINT.parent / "editing.json"
METHODS = ("sdedit", "inversion", "frames")  # SDEdit of the video, inversion + injection, frame by frame


def methods(editor: VideoEditor, args, edit: str) -> dict:
    """name -> edit(videos, source_prompts, target_prompts), for the families in `args.methods`."""
    n = editor.t2v.diffusion.num_steps
    found = {f"sdedit s={s}": lambda v, src, tgt, s=s: editor.sdedit(v, tgt, s, args.steps)
             for s in (args.strengths if "sdedit" in args.methods else ())}
    for f in args.taus if edit in args.inversion_edits and "inversion" in args.methods else ():
        tau = max(round(f * n) - 1, -1)
        found[f"inversion τ={tau}"] = lambda v, src, tgt, tau=tau: editor.inject(v, src, tgt, tau, args.steps)[0]
    for mode in ("per_frame", "cross_frame") if "frames" in args.methods else ():
        for warp in (False, True):
            found[f"{mode} s={args.frame_strength}" + (", warped noise" if warp else "")] = (
                lambda v, src, tgt, mode=mode, warp=warp: editor.sdedit(v, tgt, args.frame_strength, args.steps,
                                                                        mode=mode, warp_noise=warp))
    return found


def run(args, save=lambda results: None) -> dict:
    device = torch.device(args.device)
    editor = VideoEditor(TextToVideo.load(args.t2v, device=str(device)), args.guidance)
    ev = Evaluator.load(device=device)
    data = MovingMNIST(args.n, split="test", seed=args.seed)
    videos, _, labels = data.batch(range(args.n))
    digit_size = data.config.digit_size
    source_prompts = edit_prompts(labels["digits"][:, 0], labels["direction"][:, 0])
    kept = json.loads(args.out.read_text()) if args.out.exists() else {}
    rows = [] if "edits" in args.parts else kept.get("rows", [])
    recon = [] if "reconstruction" in args.parts else kept.get("reconstruction", [])
    results = {"t2v": str(args.t2v), "n": args.n, "split": "test", "seed": args.seed, "steps": args.steps,
               "guidance": editor.guidance, "machine": describe(device), "rows": rows, "reconstruction": recon,
               "recon_n": args.recon_n}
    for edit in EDITS if "edits" in args.parts else ():
        target = edit_targets(labels, edit, data.config, args.seed)
        target_prompts = edit_prompts(target["digit"], target["direction"])
        rows.append({"edit": edit, "method": "source", **edit_scores(ev, videos, target, digit_size)})
        for name, fn in methods(editor, args, edit).items():
            began = time.perf_counter()
            edited = torch.cat([fn(videos[i:i + args.batch], source_prompts[i:i + args.batch],
                                   target_prompts[i:i + args.batch]).cpu() for i in range(0, args.n, args.batch)])
            rows.append({"edit": edit, "method": name,
                         **edit_scores(ev, edited, target, digit_size, time.perf_counter() - began)})
            print(edit, name, {k: round(v, 3) for k, v in rows[-1].items() if isinstance(v, float)}, flush=True)
            save(results)
    m = min(args.recon_n, args.n)
    ids, sources = editor.t2v.net.tokenizer(source_prompts[:m]).to(device), videos[:m]
    for steps in args.recon_steps if "reconstruction" in args.parts else ():
        rebuilt = torch.cat([reconstruct(editor.t2v.diffusion, editor.t2v.net, sources[i:i + args.batch].to(device),
                                         ids[i:i + args.batch], steps).cpu() for i in range(0, m, args.batch)])
        recon.append({"steps": steps, "rms_error": (rebuilt - sources).square().mean().sqrt().item()})
        print("reconstruction", recon[-1], flush=True)
        save(results)
    return results


def table(results: dict) -> str:
    keys = ("edit_success", "digit_acc", "direction_acc", "traj_error", "within_2px", "identity", "flicker", "seconds")
    lines = ["| edit | method | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    lines += [f"| {r['edit']} | {r['method']} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |"
              for r in results["rows"]]
    lines += ["", "| DDIM steps | reconstruction RMS |", "|---|---|"]
    lines += [f"| {r['steps']} | {r['rms_error']:.4f} |" for r in results["reconstruction"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    numbers = lambda cast: lambda text: [cast(v) for v in text.split(",")]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="source videos per edit")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps (of a whole run; SDEdit runs strength·steps)")
    parser.add_argument("--t2v", type=Path, default=CHECKPOINT,
                        help="the text-to-video checkpoint that edits (e.g. one with attention on finer tokens)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance (default: the card's beside --t2v, 3 without one)")
    parser.add_argument("--methods", type=numbers(str), default=list(METHODS),
                        help=f"the edit families to run, of {','.join(METHODS)}")
    parser.add_argument("--strengths", type=numbers(float), default=[0.5, 0.7, 0.9])
    parser.add_argument("--taus", type=numbers(float), default=[1.0, 0.7, 0.4],
                        help="inject while t > τ = round(f·N) − 1, for each f (1.0: no injection)")
    parser.add_argument("--frame_strength", type=float, default=0.7, help="SDEdit strength of the image-mode edits")
    parser.add_argument("--inversion_edits", type=numbers(str), default=list(EDITS),
                        help="the edits that get the (slow) inversion rows, default all")
    parser.add_argument("--recon_steps", type=numbers(int), default=[5, 10, 20, 50])
    parser.add_argument("--recon_n", type=int, default=100, help="source videos of the reconstruction round trip")
    parser.add_argument("--parts", type=numbers(str), default=["edits", "reconstruction"],
                        help="what to run: edits, reconstruction; a part not run keeps the --out file's rows")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not set(args.methods) <= set(METHODS):
        parser.error(f"--methods takes {','.join(METHODS)}, got {','.join(args.methods)}")
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = run(args, save=lambda results: args.out.write_text(json.dumps(results, indent=2) + "\n"))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return results


if __name__ == "__main__":
    main()
