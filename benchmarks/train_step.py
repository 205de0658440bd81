"""Training-step speed of tinyvdm's UNet3D against peer video U-Nets, measured side by side.

    python benchmarks/train_step.py                     # batch 8 of 1×8×32×32 videos, 3 timed rounds
    python benchmarks/train_step.py --rounds 5 --json results.json
    python benchmarks/train_step.py --preset gpu --models tinyvdm-bf16 --compile   # a train preset's U-Net and batch

One step = forward, MSE against a target, backward, AdamW. Each model runs in its own worker
process (so peak memory is its own), and the workers take turns, one step each per round, so a
machine shared with other jobs slows them alike. A fp32 and a bf16 matmul take their turns too:
they are the yardstick for "achieved GFLOP/s" (FLOPs counted by torch.utils.flop_counter).
Peak memory is the worker's peak resident set, and (+model) the part of it above a bare torch.

On CUDA (`--device auto` finds it) the models run on the GPU, timed between synchronisations, and the
report is samples/s, peak memory (torch.cuda.max_memory_allocated) and model FLOP utilisation (MFU):
the counted FLOPs of a step per second over the GPU's dense bf16 peak, from PEAK_BF16_TFLOPS by device
name or `--peak-tflops`. `--compile` times a torch.compile'd model (FLOPs are counted on the eager one).

Peers (random init, no weights), skipped when not installed:
  lucidrains  video-diffusion-pytorch Unet3D(dim=32, dim_mults=(1, 2, 4))
              `pip install --no-deps video-diffusion-pytorch einops-exts rotary-embedding-torch`
              (its declared torchvision and transformers are for data and text only; PyPI's
              torchvision does not import beside this torch, so the worker supplies a stand-in)
  diffusers   UNet3DConditionModel(block_out_channels=(32, 64, 128), layers_per_block=1), given
              one random context token of width 32, since it always cross-attends
The `bench` extra of tinyvdm installs diffusers and the light dependencies above.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
import types
import warnings

import torch
import torch.nn.functional as F

MODELS = ("tinyvdm", "tinyvdm-bf16", "lucidrains", "diffusers")
PEERS = {"lucidrains": "video_diffusion_pytorch", "diffusers": "diffusers"}
MATMUL_N = 1024
# dense bf16 tensor-core peaks (vendor data sheets, no sparsity), TFLOP/s; the first name found in the device's wins
PEAK_BF16_TFLOPS = {"H200": 989, "H100 PCIe": 756, "H100": 989, "A100": 312, "L40S": 362, "L4": 121, "A10G": 70,
                    "A10": 125, "RTX 4090": 165, "RTX 3090": 71}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 101), metavar="N",
                        help="timed steps per model, after one warm-up step (default 3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--device", default="auto", help="auto (cuda when present), cpu or cuda")
    parser.add_argument("--preset", help="time the U-Net, batch size, frames and size of this train preset "
                                         "instead of the defaults (the tinyvdm models only)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the tinyvdm models")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, TFLOP/s (default: by name)")
    args = parser.parse_args(argv)
    args.device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    unet = {}
    if args.preset:
        from tinyvdm.train import get_preset
        config = get_preset(args.preset)
        if config.task != "video_diffusion":
            parser.error(f"--preset takes a UNet3D preset (task video_diffusion); {args.preset!r} is {config.task!r}")
        unet = config.model
        args.batch, args.frames, args.size = config.batch_size, config.data["frames"], config.data["size"]
    shape = (args.batch, unet.get("in_channels", 1), args.frames, args.size, args.size)

    names = []
    for name in args.models.split(","):
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; expected some of {MODELS}")
        if name in PEERS and importlib.util.find_spec(PEERS[name]) is None:
            print(f"skipping {name}: {PEERS[name]} is not installed (see this file's docstring)")
            continue
        names.append(name)

    if args.device.startswith("cuda"):
        args.gpu = torch.cuda.get_device_name(args.device)
        args.peak_tflops = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in args.gpu), None)
        print(f"{args.gpu}, torch {torch.__version__}, bf16 peak "
              f"{f'{args.peak_tflops:g} TFLOP/s' if args.peak_tflops else 'unknown (give --peak-tflops)'}")
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print(f"one step = forward + MSE + backward + AdamW on a batch {shape}; "
          f"{args.rounds} timed rounds after a warm-up, workers taking turns\n")

    ctx = mp.get_context("spawn")
    workers = {}
    cuda = args.device.startswith("cuda")
    for name in names if cuda else [*names, "matmul"]:  # on a GPU the yardstick is its bf16 peak
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker, args=(child, name, shape, args.threads, args.device, unet, args.compile),
                              daemon=True)
        process.start()
        workers[name] = (process, parent)
    info = {name: conn.recv() for name, (_, conn) in workers.items()}  # setup + warm-up step each
    for name, result in info.items():
        if "error" in result:
            print(f"{name}: failed to build: {result['error']}")
    live = [name for name in workers if "error" not in info[name]]

    times = {name: [] for name in live}
    for _ in range(args.rounds):
        for name in live:
            workers[name][1].send("step")
            times[name].append(workers[name][1].recv())
    for name in live:
        workers[name][1].send("stop")
        info[name].update(workers[name][1].recv())
        workers[name][0].join()

    report = (_cuda_report if cuda else _report)(args, shape, names, live, info, times)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


def _report(args, shape, names, live, info, times) -> dict:
    matmul = {dtype: statistics.median(t[dtype] for t in times["matmul"]) for dtype in ("fp32", "bf16")}
    matmul_gflops = {dtype: 2 * MATMUL_N ** 3 / s / 1e9 for dtype, s in matmul.items()}
    print(f"matmul {MATMUL_N}x{MATMUL_N}: fp32 {matmul_gflops['fp32']:.1f} GFLOP/s, "
          f"bf16 {matmul_gflops['bf16']:.1f} GFLOP/s (median over the rounds)\n")
    rows = {}
    header = (f"{'model':14s} {'params':>8s} {'s/step':>8s} {'(min)':>7s} {'samples/s':>10s} {'GFLOP/step':>11s} "
              f"{'GFLOP/s':>8s} {'% matmul':>9s} {'peak RSS':>9s} {'(+model)':>9s}")
    print(header)
    for name in [n for n in names if n in live]:
        step = statistics.median(times[name])
        gflop = info[name]["flops"] / 1e9
        yardstick = matmul_gflops["bf16" if name.endswith("bf16") else "fp32"]
        rows[name] = dict(params=info[name]["params"], s_per_step=step, min_s_per_step=min(times[name]),
                          samples_per_s=shape[0] / step, gflop_per_step=gflop, gflop_per_s=gflop / step,
                          fraction_of_matmul=gflop / step / yardstick, peak_rss_mb=info[name]["peak_rss_mb"],
                          model_rss_mb=info[name]["peak_rss_mb"] - info[name]["base_rss_mb"], step_times=times[name])
        r = rows[name]
        print(f"{name:14s} {r['params'] / 1e6:7.2f}M {step:8.2f} {r['min_s_per_step']:7.2f} {r['samples_per_s']:10.2f} "
              f"{gflop:11.1f} {r['gflop_per_s']:8.1f} {100 * r['fraction_of_matmul']:8.0f}% "
              f"{r['peak_rss_mb']:7.0f}MB {r['model_rss_mb']:7.0f}MB")

    verdict = {}
    peers = [n for n in PEERS if n in rows]
    if "tinyvdm" in rows:
        ours = rows["tinyvdm"]
        print()
        for peer in peers:
            ratio = ours["samples_per_s"] / rows[peer]["samples_per_s"]
            best = rows[peer]["min_s_per_step"] / ours["min_s_per_step"]
            verdict[f"speedup_vs_{peer}"], verdict[f"best_step_speedup_vs_{peer}"] = ratio, best
            print(f"tinyvdm vs {peer:10s}: {ratio:5.1f}x samples/s ({best:.1f}x best step to best step), "
                  f"{ours['params'] / rows[peer]['params']:.2f}x params, "
                  f"{ours['gflop_per_step'] / rows[peer]['gflop_per_step']:.2f}x FLOPs per step")
        if peers:
            fastest = max(peers, key=lambda n: rows[n]["samples_per_s"])
            smallest = min(peers, key=lambda n: rows[n]["params"])
            ratio = verdict[f"speedup_vs_{fastest}"]
            enough = ours["params"] >= rows[smallest]["params"]
            verdict.update(faster_peer=fastest, speedup_vs_faster_peer=ratio, params_at_least_smaller_peer=enough)
            print(f"target >= 5x the faster peer ({fastest}): {ratio:.1f}x -> {'met' if ratio >= 5 else 'NOT met'}; "
                  f"params >= smaller peer ({smallest}): {'yes' if enough else 'NO'}")
        if "tinyvdm-bf16" in rows:
            gain = rows["tinyvdm-bf16"]["samples_per_s"] / ours["samples_per_s"]
            verdict["bf16_autocast_speedup"] = gain
            print(f"bf16 autocast: {gain:.2f}x the fp32 step speed -> {'pays' if gain > 1 else 'does not pay'} here "
                  f"(bf16 matmul is {matmul_gflops['bf16'] / matmul_gflops['fp32']:.2f}x fp32)")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return dict(shape=shape, threads=args.threads, rounds=args.rounds,
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                matmul_gflops=matmul_gflops, models=rows, verdict=verdict)


def _cuda_report(args, shape, names, live, info, times) -> dict:
    rows = {}
    print(f"{'model':14s} {'params':>8s} {'s/step':>8s} {'(min)':>7s} {'samples/s':>10s} {'GFLOP/step':>11s} "
          f"{'TFLOP/s':>8s} {'MFU':>6s} {'peak mem':>9s}")
    for name in [n for n in names if n in live]:
        step, flops = statistics.median(times[name]), info[name]["flops"]
        mfu = flops / step / (args.peak_tflops * 1e12) if args.peak_tflops else None
        rows[name] = dict(params=info[name]["params"], s_per_step=step, min_s_per_step=min(times[name]),
                          samples_per_s=shape[0] / step, gflop_per_step=flops / 1e9, tflop_per_s=flops / step / 1e12,
                          mfu_bf16=mfu, peak_memory_gb=info[name]["peak_memory_gb"], step_times=times[name])
        r = rows[name]
        print(f"{name:14s} {r['params'] / 1e6:7.2f}M {step:8.3f} {r['min_s_per_step']:7.3f} {r['samples_per_s']:10.1f} "
              f"{r['gflop_per_step']:11.1f} {r['tflop_per_s']:8.1f} {f'{100 * mfu:5.1f}%' if mfu else '    ?':>6s} "
              f"{r['peak_memory_gb']:7.2f}GB")
    return dict(shape=shape, device=args.gpu, preset=args.preset, compile=args.compile, rounds=args.rounds,
                peak_bf16_tflops=args.peak_tflops, models=rows)


def _worker(conn, name: str, shape: tuple[int, ...], threads: int, device: str = "cpu", unet: dict | None = None,
            compile: bool = False) -> None:
    """One model in its own process: build it, count params and FLOPs, then run a step per request."""
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    try:
        base_rss = _rss_mb()
        if name == "matmul":
            step, params, flops = _matmul_step(), 0, 0
            step()  # warm-up
        else:
            eager_step, step, model = _train_step(name, shape, device, unet, compile and name.startswith("tinyvdm"))
            params = sum(p.numel() for p in model.parameters())
            flops = _count_flops(eager_step)  # the counted step doubles as the warm-up
            if step is not eager_step:
                step()  # compiles
        conn.send(dict(params=params, flops=flops, base_rss_mb=base_rss))
    except Exception as error:  # report and leave the run to the other workers
        conn.send(dict(error=f"{type(error).__name__}: {error}"))
        return
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    while conn.recv() == "step":
        conn.send(step())
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.startswith("cuda") else None
    conn.send(dict(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, peak_memory_gb=peak))


def _train_step(name: str, shape: tuple[int, ...], device: str = "cpu", unet: dict | None = None,
                compile: bool = False):
    """(a step of the eager model, for counting FLOPs; the step to time, compiled if asked; the model)."""
    torch.manual_seed(0)
    x0 = torch.randn(shape, device=device)
    t = torch.randint(0, 1000, (shape[0],), device=device)
    if name.startswith("tinyvdm"):
        from tinyvdm.models import UNet3D
        from tinyvdm.train import configure_backends
        configure_backends(torch.device(device))
        model = UNet3D(**{"in_channels": shape[1], **(unet or {})}).to(device)
        forward = lambda net: net(x0, t)  # noqa: E731
    elif name == "lucidrains":
        _stand_in_torchvision()
        from video_diffusion_pytorch import Unet3D
        model = Unet3D(dim=32, dim_mults=(1, 2, 4), channels=shape[1])
        model.to(device)
        forward = lambda net: net(x0, t.float())  # noqa: E731
    else:
        from diffusers import UNet3DConditionModel
        model = UNet3DConditionModel(
            in_channels=shape[1], out_channels=shape[1], block_out_channels=(32, 64, 128), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
            attention_head_dim=8, cross_attention_dim=32)
        model.to(device)
        context = torch.randn(shape[0], 1, 32, device=device)
        forward = lambda net: net(x0, t, encoder_hidden_states=context).sample  # noqa: E731
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    bf16 = name.endswith("bf16")

    def step(net) -> float:
        _synchronize(device)
        start = time.perf_counter()
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.mse_loss(forward(net).float(), x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _synchronize(device)
        return time.perf_counter() - start

    compiled = torch.compile(model) if compile else None
    eager_step = lambda: step(model)  # noqa: E731
    return eager_step, (lambda: step(compiled)) if compile else eager_step, model


def _count_flops(step) -> int:
    """FLOPs of one training step (matmuls, convolutions, attention; forward and backward). Attention runs its math
    kernel here: the counter has no formula for the fused CPU kernel and would count its attention as 0."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        step()
    return counter.get_total_flops()


def _matmul_step():
    """The yardstick: one fp32 and one bf16 (MATMUL_N)² matmul per round, seconds of each."""
    a = {dtype: torch.randn(MATMUL_N, MATMUL_N, dtype=dtype) for dtype in (torch.float32, torch.bfloat16)}

    def timed(x: torch.Tensor, repeats: int) -> float:
        x @ x
        start = time.perf_counter()
        for _ in range(repeats):
            x @ x
        return (time.perf_counter() - start) / repeats

    def step() -> dict:
        return {"fp32": timed(a[torch.float32], 10), "bf16": timed(a[torch.bfloat16], 2)}

    return step


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _stand_in_torchvision() -> None:
    """video-diffusion-pytorch imports torchvision at module level for its GIF dataset only; give it a stand-in."""
    class Unavailable:
        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, *args, **kwargs):
            raise RuntimeError("torchvision stand-in: not available in this benchmark")

    def attribute(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return Unavailable

    torchvision = types.ModuleType("torchvision")
    for sub in ("transforms", "utils"):
        module = types.ModuleType(f"torchvision.{sub}")
        module.__getattr__ = attribute
        setattr(torchvision, sub, module)
        sys.modules[f"torchvision.{sub}"] = module
    sys.modules["torchvision"] = torchvision


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


if __name__ == "__main__":
    main()
