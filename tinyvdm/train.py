"""One trainer for every model of the course (nanoGPT-style: one config dataclass, one loop).

`train(config)` runs AdamW (Loshchilov & Hutter 2019) with linear warm-up and cosine decay
of the learning rate, an exponential moving average (EMA) of the weights, gradient clipping
and optional bf16 autocast / `torch.compile`, on any *task*: a model,
`loss_fn(model, batch, generator) -> scalar` and `batch_fn(step) -> batch`. The batch and
every random draw of step s are pure functions of (seed, s) (the step's generator, and
the global RNG reseeded each step for dropout and the like), so a checkpoint of model, EMA,
optimizer and step is the whole state of a run. Checkpoints are written atomically (temp
file + `os.replace`): a run killed at any moment (kill -9) and started again with the same
command ends with the same weights as one never interrupted, bit for bit on CPU.

Command line: a preset, then `--key value` overrides parsed by the field's type; keys of
the nested dicts are dotted (`--model.dim 32`, `--data.frames 4`). Unknown presets and keys
are errors that list the valid ones.

    python -m tinyvdm train --preset course --steps 3000 --out_dir runs/course
    python -m tinyvdm sample --ckpt runs/course/ckpt.pt --out samples.gif --sampler ddim --steps 50

A run resumes from `out_dir/ckpt.pt` whenever that file exists (so re-running a killed
command continues it); `--fresh` starts over. Each run writes `out_dir/log.jsonl` (one line
per `log_every` steps) and `out_dir/log.png` (the loss curve).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import functools
import hashlib
import importlib
import inspect
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from tinyvdm.data import PRESETS as VIDEO_PRESETS
from tinyvdm.data import MovingMNIST
from tinyvdm.distributed import World, barrier, setup, sum_across, teardown
from tinyvdm.diffusion import GaussianDiffusion, cosine_beta_schedule, linear_beta_schedule
from tinyvdm.models import UNet3D, VideoAutoencoder, freeze_spatial
from tinyvdm.pipelines.sampling import SAMPLERS, sample

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class TrainConfig:
    """Everything a run depends on. `task` names what is trained (see `build_task`)."""
    preset: str = "course"
    task: str = "video_diffusion"  # a name in TASKS, or "package.module:function" returning a Task
    model: dict = field(default_factory=dict)  # keyword arguments of the model
    data: dict = field(default_factory=dict)  # keyword arguments of the dataset
    diffusion: dict = field(default_factory=dict)  # schedule, num_steps, prediction, min_snr_gamma
    loss: dict = field(default_factory=dict)  # options of a task's loss that is not diffusion's (the autoencoder's)
    init_from: str = ""  # a checkpoint whose EMA weights the model starts from ("": random initial weights)
    train_only: str = "all"  # "all", or "temporal": spatial layers frozen (an image model turned into a video model)
    batch_size: int = 16
    micro_batches: int = 1  # split each batch into this many parts: gradient accumulation and/or DDP processes
    steps: int = 2000
    lr: float = 2e-4
    min_lr: float = 2e-5  # the cosine decays to this at the last step
    warmup: int = 100
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    ema_decay: float = 0.999
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    precision: str = "fp32"  # "fp32" or "bf16" (autocast)
    compile: bool = False
    grad_checkpoint: bool = False  # every UNet3D recomputes its blocks in the backward pass: less memory, more compute
    seed: int = 0
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    threads: int = 0  # torch CPU threads; 0 keeps torch's default (one per physical core)
    out_dir: str = "runs/course"
    ckpt_every: int = 200
    snapshot_every: int = 0  # also keep the EMA weights of every N-th step in out_dir/snapshots/ (0: never)
    log_every: int = 10
    progress: bool = True


# Fields that change how a run is carried out but not the weights it ends with:
# they may differ between a run and its resumption.
RUN_KEYS = ("device", "threads", "compile", "grad_checkpoint", "out_dir", "ckpt_every", "snapshot_every", "log_every",
            "progress")
PRECISIONS = ("fp32", "bf16")
TRAIN_ONLY = ("all", "temporal")


class ConfigError(ValueError):
    """A preset, key or value that does not exist or does not parse."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not match the run."""


@dataclass
class Task:
    """What the trainer trains: a model, its loss, the batch of each step, and (for generative models) sampling."""
    model: nn.Module
    loss_fn: Callable[[nn.Module, Any, torch.Generator], torch.Tensor]  # (model, batch, generator) -> scalar
    batch_fn: Callable[[int], Any]  # step -> batch, a pure function of (config.seed, step)
    # (model, n, sampler=, steps=, eta=, generator=, progress=, **task-specific) -> videos (n, C, T, H, W);
    # None if it cannot generate
    sample: Callable[..., torch.Tensor] | None = None
    diffusion: GaussianDiffusion | None = None  # the chain it was trained with, for generative tasks
    video_shape: tuple[int, ...] = ()  # (C, T, H, W) of one sample


@dataclass
class TrainResult:
    """A finished run: the raw and EMA models (EMA is the one to sample from), the log, where it lives."""
    model: nn.Module
    ema: nn.Module
    log: list[dict]
    config: TrainConfig
    checkpoint: Path


def train(config: TrainConfig, task: Task | None = None, fresh: bool = False) -> TrainResult:
    """Train `task` (default `build_task(config)`) for `config.steps` steps; resumes from `out_dir/ckpt.pt` if there."""
    check_config(config)
    world, device = setup(resolve_device(config.device))
    config = for_world(config, world)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out / "ckpt.pt", out / "log.jsonl"
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)  # float sums depend on the thread split: fix it for bit-exact resume
    try:
        torch.manual_seed(config.seed)  # the model's initial weights
        task = task if task is not None else build_task(config)
        configure_backends(device)
        model = prepare_model(config, task.model).to(device)
        ema = copy.deepcopy(model).requires_grad_(False).eval()
        optimizer = make_optimizer(config, model)
        start, wall = 0, 0.0
        if ckpt_path.exists() and not fresh:
            start, wall = restore(ckpt_path, config, model, ema, optimizer)
        log = trim_log(log_path, start) if world.main else []
        _loop(config, task, model, ema, optimizer, device, start, wall, ckpt_path, log_path, log, world)
        barrier(world)
        if log:
            plot_log(log_path)
        return TrainResult(model, ema, log, config, ckpt_path)
    finally:
        torch.set_num_threads(threads)


def for_world(config: TrainConfig, world: World) -> TrainConfig:
    """Under torchrun, each process takes micro_batches / world of each batch: one each unless told otherwise."""
    if world.size == 1:
        return config
    if config.micro_batches == 1:
        config = replace(config, micro_batches=world.size)
    if config.micro_batches % world.size or config.batch_size % config.micro_batches:
        raise ConfigError(f"micro_batches={config.micro_batches} must be a multiple of the {world.size} processes "
                          f"and divide batch_size={config.batch_size}")
    return config


def _loop(config, task, model, ema, optimizer, device, start, wall, ckpt_path, log_path, log, world=World()):
    """Steps start .. config.steps - 1; appends to `log` and `log_path`, saves checkpoints.

    A step's batch is split into `micro_batches` equal parts, each with its own noise stream; this process
    runs its share of them, accumulating gradients, and DDP averages them over the processes. The weights
    depend on (config, seed) only, not on how many processes shared the parts (up to float summation order).
    """
    # find_unused_parameters: an image-mode step leaves the temporal layers out of the graph
    ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if world.size > 1 else None
    forward = ddp or model
    forward = torch.compile(forward) if config.compile else forward
    bf16 = config.precision == "bf16"
    parts, mine = config.micro_batches, config.micro_batches // world.size
    model.train()
    began, since = time.perf_counter(), time.perf_counter()
    loss_sum, count = torch.zeros((), device=device), 0
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps,
               disable=not (config.progress and world.main), desc=config.preset)
    with open(log_path, "a") if world.main else contextlib.nullcontext() as log_file:
        for step in bar:
            torch.manual_seed(step_seed(config.seed, step, "global"))  # dropout and anything without a generator
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = task.batch_fn(step)
            optimizer.zero_grad(set_to_none=True)
            for j in range(mine):
                m = world.rank * mine + j
                stream = "loss" if parts == 1 else f"loss/{m}"
                sync = ddp.no_sync() if ddp is not None and j < mine - 1 else contextlib.nullcontext()
                with sync:
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        loss = task.loss_fn(forward, to_device(micro_batch(batch, m, parts), device),
                                            step_generator(config.seed, step, stream, device))
                    if loss.ndim != 0:
                        raise ValueError(f"loss_fn must return a scalar, got a tensor of shape {tuple(loss.shape)}")
                    (loss * (world.size / parts)).backward()  # DDP divides by world.size: the mean over parts
                loss_sum += loss.detach().float() / parts
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or math.inf)
            optimizer.step()
            ema_update(ema, model, config.ema_decay, step)
            count += 1
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                now = time.perf_counter()
                mean = (sum_across(loss_sum, world) / count).item()
                if not math.isfinite(mean):
                    raise FloatingPointError(f"the loss is {mean} at step {done}: lower lr, or train in fp32")
                record = {"step": done, "loss": mean, "lr": lr, "grad_norm": float(grad_norm),
                          "samples_per_s": count * config.batch_size / (now - since),
                          "wall_s": wall + now - began}
                if world.main:
                    log.append(record)
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                bar.set_postfix(loss=f"{mean:.4f}")
                loss_sum.zero_()
                count, since = 0, now
            if world.main and (done % config.ckpt_every == 0 or done == config.steps):
                save_checkpoint(ckpt_path, {
                    "config": asdict(config), "step": done, "wall_s": wall + time.perf_counter() - began,
                    "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict()})
            if world.main and config.snapshot_every and done % config.snapshot_every == 0:
                save_checkpoint(ckpt_path.parent / "snapshots" / f"step_{done:06d}.pt", {
                    "config": asdict(config), "step": done, "wall_s": wall + time.perf_counter() - began,
                    "ema": ema.state_dict()})


def prepare_model(config: TrainConfig, model: nn.Module) -> nn.Module:
    """The trainer's options on a task's model: the EMA weights of `init_from`, `train_only`, `grad_checkpoint`."""
    if config.init_from:
        state = read_checkpoint(config.init_from, resumable=False)["ema"]
        if not any(k.startswith("unet.") for k in model.state_dict()):  # a PerFrame image model into a bare UNet3D
            state = {k.removeprefix("unet."): v for k, v in state.items()}
        model.load_state_dict(state)
    if config.train_only == "temporal" and freeze_spatial(model) == 0:
        raise ConfigError(f"train_only='temporal' but task {config.task!r} has no temporal layers to train")
    for module in model.modules():
        if isinstance(module, UNet3D):
            module.grad_checkpoint = config.grad_checkpoint
    return model


def configure_backends(device: torch.device) -> dict[str, bool]:
    """On CUDA: TF32 matmuls and convolutions (fp32 range, 10-bit mantissa, several times the fp32 speed on
    Ampere and later; training does not notice) and cuDNN autotuning. On CPU nothing: fp32 stays exact.
    Returns what was set."""
    if device.type != "cuda":
        return {}
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    return {"cuda.matmul.allow_tf32": True, "cudnn.allow_tf32": True, "cudnn.benchmark": True}


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay (SGDR, Loshchilov & Hutter 2017), for 0-based `step`.

    lr_s = lr (s + 1) / warmup                                      for s < warmup
    lr_s = min_lr + (lr - min_lr) (1 + cos(pi p)) / 2,  p = (s - warmup) / (steps - warmup)   otherwise
    """
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    p = (step - config.warmup) / (config.steps - config.warmup)
    return config.min_lr + (config.lr - config.min_lr) * (1 + math.cos(math.pi * p)) / 2


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """theta_ema <- d theta_ema + (1 - d) theta with d = min(decay, (1 + s) / (10 + s)) after step s.

    The warm-up of d lets the average forget the random initial weights quickly on short runs.
    Buffers (e.g. normalisation statistics) are copied.
    """
    d = min(decay, (1 + step) / (10 + step))
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1 - d)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and kernels only, never on biases and norm gains (as in nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas))


def step_generator(seed: int, step: int, stream: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator for one stream ("data", "loss", ...) of one step, independent of every other step and stream."""
    return torch.Generator(device).manual_seed(step_seed(seed, step, stream))


def step_seed(seed: int, step: int, stream: str) -> int:
    """A 64-bit seed hashed from (seed, stream, step), so that nearby seeds and steps give unrelated streams."""
    return int.from_bytes(hashlib.blake2b(f"{seed}/{stream}/{step}".encode(), digest_size=8).digest(), "little")


def map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], batch):
    """fn applied to every tensor of a batch: a tensor, or tuples / lists / dicts of them (anything else as is)."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, (tuple, list)):
        return type(batch)(map_tensors(fn, b) for b in batch)
    if isinstance(batch, dict):
        return {k: map_tensors(fn, v) for k, v in batch.items()}
    return batch


def to_device(batch, device: torch.device):
    """Move the tensors of a batch to `device`."""
    return map_tensors(lambda t: t.to(device, non_blocking=True), batch)


def micro_batch(batch, index: int, count: int):
    """Part `index` of `count` equal parts (along dim 0) of every tensor of a batch."""
    return map_tensors(lambda t: t[index * (t.shape[0] // count):(index + 1) * (t.shape[0] // count)], batch)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, state: dict) -> None:
    """torch.save to `path.tmp`, flush to disk, then rename: a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_checkpoint(path: str | Path, resumable: bool = True) -> dict:
    """The checkpoint's dict of plain tensors and containers, loaded with `weights_only=True` (no arbitrary code).

    resumable=False also accepts the EMA-only checkpoints of snapshots and `export_checkpoint`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError or UnpicklingError depending on the damage
        raise CheckpointError(f"{path} is truncated or not a tinyvdm checkpoint ({type(e).__name__}: {e}); "
                              "delete it (or train with --fresh) to start over") from e
    expected = {"config", "step", "wall_s", "ema"} | ({"model", "optimizer"} if resumable else set())
    if not isinstance(state, dict) or not expected <= state.keys():
        found = sorted(state.keys()) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a tinyvdm checkpoint: expected keys {sorted(expected)}, got {found}")
    if "scales" in state:  # an int8 export: w = s q
        scales = state["scales"]
        state["ema"] = {k: v.float() * scales[k] if k in scales else v for k, v in state["ema"].items()}
        del state["scales"]
    return state


def restore(path: Path, config: TrainConfig, model, ema, optimizer) -> tuple[int, float]:
    """Load a checkpoint of the same run into model, EMA and optimizer; return (step, wall seconds)."""
    state = read_checkpoint(path)
    saved = asdict(config_from_dict(state["config"]))
    now = asdict(config)
    changed = [f"{k}: checkpoint {saved[k]!r}, now {now[k]!r}" for k in now if k not in RUN_KEYS and saved[k] != now[k]]
    if changed:
        raise CheckpointError(f"{path} belongs to a different run ({'; '.join(changed)}); "
                              "use another out_dir, or --fresh to overwrite it")
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    return state["step"], state["wall_s"]


def load_checkpoint(path: str | Path, ema: bool = True, device: str = "cpu") -> tuple[nn.Module, TrainConfig, Task]:
    """(model with the EMA weights, or the raw ones if `ema=False`, in eval mode; its config; its task)."""
    state = read_checkpoint(path, resumable=not ema)
    config = config_from_dict(state["config"])
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the caller's RNG alone
        task = build_task(config)
    task.model.load_state_dict(state["ema" if ema else "model"])
    return task.model.to(device).eval(), config, task


def quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, s): int8 q = round(w / s) with one scale per output channel (row of dim 0), s = max_row |w| / 127,
    so that w ≈ s q to within s / 2 in every entry."""
    s = w.float().abs().amax(dim=tuple(range(1, w.ndim)), keepdim=True).clamp(min=1e-12) / 127
    return (w.float() / s).round().to(torch.int8), s


def export_checkpoint(path: str | Path, dest: str | Path, weights: str = "fp16") -> Path:
    """Write the EMA weights of checkpoint `path` with its config, step and wall time to `dest`: what a shipped model
    needs, at a sixth of a resumable checkpoint's size in fp16. weights="int8" stores the matrices and kernels
    (floating tensors of 2 or more dimensions) as int8 with a scale per output channel (`quantize`) and the rest in
    fp16: another half off; `read_checkpoint` turns them back into floats."""
    if weights not in ("fp16", "int8"):
        raise ValueError(f"weights must be 'fp16' or 'int8', got {weights!r}")
    state = read_checkpoint(path, resumable=False)
    out = {k: state[k] for k in ("config", "step", "wall_s")}
    ema = {k: v.half() if v.is_floating_point() else v for k, v in state["ema"].items()}
    if weights == "int8":
        big = [k for k, v in state["ema"].items() if v.is_floating_point() and v.ndim >= 2]
        out["scales"] = {}
        for k in big:
            ema[k], out["scales"][k] = quantize(state["ema"][k])
    save_checkpoint(dest, out | {"ema": ema})
    return Path(dest)


def export_run(run: str | Path, dest: str | Path, what: str, command: str, weights: str = "fp16") -> dict:
    """Export run/ckpt.pt's EMA weights to `dest` (`export_checkpoint`) and return its card: what the model is, the
    command that trained it, steps, wall time, machine, parameters, weights, size, config and final loss (the
    benchmarks add scores)."""
    from .machine import describe
    run = Path(run)
    state = read_checkpoint(run / "ckpt.pt")
    path = export_checkpoint(run / "ckpt.pt", dest, weights)
    net, config, _ = load_checkpoint(path)
    return {"what": what, "command": command, "steps": state["step"], "train_wall_s": round(state["wall_s"], 1),
            "train_machine": describe("cpu"), "torch_threads": config.threads or torch.get_num_threads(),
            "parameters": sum(p.numel() for p in net.parameters()), "weights": weights,
            "checkpoint_bytes": path.stat().st_size,
            "config": state["config"], "final_loss": read_log(run / "log.jsonl")[-1]["loss"]}


# ---------------------------------------------------------------- log


def trim_log(path: Path, step: int) -> list[dict]:
    """Records of `path` up to `step` (a killed run may have logged past its last checkpoint); rewrite the file so."""
    log = []
    if step > 0 and path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the last line of a run killed mid-write
                continue
            if record["step"] <= step:
                log.append(record)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in log))
    os.replace(tmp, path)
    return log


def read_log(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def plot_log(path: str | Path) -> Figure:
    """Loss (log scale) and learning rate against step from a JSONL log; saved as a PNG next to it."""
    from matplotlib.figure import Figure  # here, not at the top: it adds a second to every command's start-up
    path = Path(path)
    log = read_log(path)
    steps = [r["step"] for r in log]
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(steps, [r["loss"] for r in log], color="C0")
    ax.set(xlabel="step", ylabel="training loss", yscale="log", title=f"training loss ({path.parent.name})")
    lr_ax = ax.twinx()
    lr_ax.plot(steps, [r["lr"] for r in log], color="C1", alpha=0.5)
    lr_ax.set_ylabel("learning rate", color="C1")
    fig.savefig(path.with_suffix(".png"), dpi=100)
    return fig


# ---------------------------------------------------------------- config and presets


def check_config(config: TrainConfig) -> None:
    """Values that would fail later or silently do the wrong thing fail here."""
    if config.precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {config.precision!r}")
    if config.train_only not in TRAIN_ONLY:
        raise ConfigError(f"train_only must be one of {TRAIN_ONLY}, got {config.train_only!r}")
    for name in ("batch_size", "micro_batches", "steps", "ckpt_every", "log_every"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be a positive integer, got {getattr(config, name)}")
    if config.batch_size % config.micro_batches:
        raise ConfigError(f"micro_batches={config.micro_batches} must divide batch_size={config.batch_size}")
    if not 0 <= config.warmup < config.steps:
        raise ConfigError(f"warmup must be in [0, steps={config.steps}), got {config.warmup}")
    if not 0 <= config.ema_decay < 1:
        raise ConfigError(f"ema_decay must be in [0, 1), got {config.ema_decay}")
    if config.grad_clip < 0 or config.threads < 0:
        raise ConfigError(f"grad_clip and threads must be >= 0, got {config.grad_clip} and {config.threads}")


def config_from_dict(values: dict) -> TrainConfig:
    names = [f.name for f in fields(TrainConfig)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown}; expected some of {names}")
    return TrainConfig(**values)


def get_preset(name: str) -> TrainConfig:
    """A fresh copy of preset `name`."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def override(config: TrainConfig, pairs: list[tuple[str, str]]) -> TrainConfig:
    """Apply `("key", "text")` pairs, each text parsed by the type of the value it replaces.

    Keys are fields of TrainConfig (`lr`), or dotted keys of its dict fields (`model.dim`);
    a dict field only takes the keys its preset lists, so a typo is an error, not a no-op.
    """
    config = copy.deepcopy(config)
    names = [f.name for f in fields(TrainConfig)]
    for key, text in pairs:
        section, dot, sub = key.partition(".")
        if section not in names or section == "preset":
            raise ConfigError(f"unknown key --{key}; expected one of {[n for n in names if n != 'preset']} "
                              "(dict keys dotted, like --model.dim)")
        current = getattr(config, section)
        if isinstance(current, dict):
            if not dot:
                raise ConfigError(f"set --{section} keys one at a time, like --{section}.{next(iter(current), 'key')}")
            if sub not in current:
                raise ConfigError(f"unknown key --{key}; preset {config.preset!r} has {section} keys {sorted(current)}")
            current[sub] = parse_value(key, text, current[sub])
        elif dot:
            raise ConfigError(f"unknown key --{key}: {section} is not a dict of keys")
        else:
            setattr(config, section, parse_value(key, text, current))
    return config


def parse_value(key: str, text: str, current):
    """`text` as the type of `current`: bool (true/false), int, float, str, tuple ("1,2,4"), or any literal if None;
    "None" turns an option off (`--diffusion.min_snr_gamma None`)."""
    if text == "None":
        return None
    kind = type(current)
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind in (int, float, str):
            return kind(text)
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text
        raise ConfigError(f"--{key} expects {kind.__name__} (like {current!r}), got {text!r}") from None
    if kind is tuple:
        return tuple(value) if isinstance(value, (tuple, list)) else (value,)
    return value


def parse_train_args(argv: list[str]) -> tuple[TrainConfig, bool]:
    """`[--preset NAME] [--fresh] [--key value | --key=value ...]` -> (config, fresh)."""
    preset, fresh, pairs, i = "course", False, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--fresh":
            fresh, i = True, i + 1
            continue
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"expected --key value, got {arg!r}")
        key, eq, text = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(argv):
                raise ConfigError(f"--{key} needs a value")
            text, i = argv[i + 1], i + 1
        i += 1
        if key == "preset":
            preset = text
        else:
            pairs.append((key, text))
    return override(get_preset(preset), pairs), fresh


def usage(preset: str = "course") -> str:
    lines = ["usage: python -m tinyvdm train [--preset NAME] [--fresh] [--key value ...]",
             f"presets: {', '.join(PRESETS)}; keys and their values in preset {preset!r}:"]
    for name, value in asdict(get_preset(preset)).items():
        if isinstance(value, dict):
            lines += [f"  --{name}.{k} {v}" for k, v in value.items()]
        elif name != "preset":
            lines.append(f"  --{name} {value}")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def train_cli(argv: list[str]) -> None:
    """`python -m tinyvdm train ...`: see `usage()`. (The Python API is `train`.)"""
    try:
        if "-h" in argv or "--help" in argv:
            print(usage(argv[argv.index("--preset") + 1] if "--preset" in argv[:-1] else "course"))
            raise SystemExit(0)
        config, fresh = parse_train_args(argv)
        check_config(config)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    try:
        result = train(config, fresh=fresh)
    except (CheckpointError, ConfigError) as e:
        raise SystemExit(f"error: {e}") from None
    finally:
        teardown()
    if result.log:
        print(f"step {result.log[-1]['step']}: loss {result.log[-1]['loss']:.4f}; checkpoint {result.checkpoint}")


def sample_cli(argv: list[str]) -> None:
    """`python -m tinyvdm sample --ckpt PATH --out x.gif [--n 8 --sampler ddim --steps 50 --seed 0]`.

    For a text-to-video checkpoint: `--prompt "the digit 7 moves left" [--prompt ...] --guidance 3`.
    """
    parser = argparse.ArgumentParser(prog="python -m tinyvdm sample",
                                     description="Sample videos from a checkpoint (EMA weights) into a GIF.")
    parser.add_argument("--ckpt", help="a checkpoint written by `python -m tinyvdm train` "
                                       "(default with --prompt: the shipped text-to-video model)")
    parser.add_argument("--out", default="samples.gif", help="the GIF to write")
    parser.add_argument("--n", type=int, default=8, help="how many videos")
    parser.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    parser.add_argument("--steps", type=int, default=None,
                        help="sampler steps (default 50); ancestral runs every step of the chain")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM noise: 0 deterministic, 1 like ancestral")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="sample from the raw weights instead of the EMA")
    parser.add_argument("--fps", type=float, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--prompt", action="append", help="text-to-video: a prompt (repeat for several videos)")
    parser.add_argument("--guidance", type=float, default=None, help="text-to-video: classifier-free guidance scale")
    parser.add_argument("--cascade", action="store_true", help="with --prompt: the shipped cascade, base text-to-video "
                        "-> temporal -> spatial super-resolution (--sampler and --steps for every stage)")
    args = parser.parse_args(argv)
    if args.sampler == "ancestral" and args.steps is not None:
        parser.error("--steps is for the other samplers: ancestral sampling runs every step of the chain")
    if args.ckpt is None and not args.prompt:
        parser.error("give --ckpt PATH, or --prompt TEXT to sample the shipped text-to-video model")
    if args.cascade:
        return _sample_cascade(parser, args)
    if args.prompt:
        from tinyvdm.pipelines.t2v import CHECKPOINT, card_guidance
        args.ckpt = args.ckpt or str(CHECKPOINT)
        if args.guidance is None:  # the scale the model's card found best
            args.guidance = card_guidance(args.ckpt)
    text = {k: v for k, v in (("prompts", args.prompt), ("guidance", args.guidance)) if v is not None}
    device = resolve_device(args.device)
    try:
        model, config, task = load_checkpoint(args.ckpt, ema=not args.raw, device=device)
    except (CheckpointError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    if task.sample is None:
        raise SystemExit(f"error: task {config.task!r} of {args.ckpt} does not generate videos")
    if text and "prompts" not in inspect.signature(task.sample).parameters:
        raise SystemExit(f"error: task {config.task!r} of {args.ckpt} takes no prompts or guidance")
    n = len(args.prompt) if args.prompt else args.n
    videos = task.sample(model, n, sampler=args.sampler, steps=args.steps or 50, eta=args.eta,
                         generator=torch.Generator(device).manual_seed(args.seed), progress=True, **text)
    from tinyvdm import viz  # here, not at the top: matplotlib slows every command's start-up
    path = viz.save_gif(videos.float().cpu(), args.out, titles=args.prompt, fps=args.fps)
    print(f"wrote {n} videos to {path}")


def _sample_cascade(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`sample --cascade --prompt TEXT`: the shipped cascade's last stage into a GIF."""
    if args.ckpt or not args.prompt:
        parser.error("--cascade samples the shipped stages from --prompt TEXT; it takes no --ckpt")
    from tinyvdm.pipelines.cascade import Cascade
    try:
        cascade = Cascade.load(device=str(resolve_device(args.device)))
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None
    each = {"sampler": args.sampler, "steps": args.steps or 50}
    options = {"base": {**each, "guidance": args.guidance}} | {s.name: each for s in cascade.stages}
    videos = cascade(args.prompt, seed=args.seed, progress=True, **options)
    from tinyvdm import viz
    path = viz.save_gif(videos.float().cpu(), args.out, titles=args.prompt, fps=args.fps)
    print(f"wrote {len(args.prompt)} videos of {tuple(videos.shape[1:])} (C, T, H, W) to {path}")


# ---------------------------------------------------------------- tasks


def build_task(config: TrainConfig) -> Task:
    """The Task named by `config.task`: a key of TASKS, or "package.module:function" (function(config) -> Task)."""
    if config.task in TASKS:
        return TASKS[config.task](config)
    module, colon, name = config.task.partition(":")
    if not colon:
        raise ConfigError(f"unknown task {config.task!r}; expected one of {sorted(TASKS)} or 'package.module:function'")
    return getattr(importlib.import_module(module), name)(config)


def make_diffusion(config: TrainConfig) -> GaussianDiffusion:
    """The GaussianDiffusion of `config.diffusion` (schedule, num_steps, prediction, min_snr_gamma, clip_x0)."""
    schedules = {"cosine": cosine_beta_schedule, "linear": linear_beta_schedule}
    schedule, num_steps, prediction, gamma = (config.diffusion[k] for k in ("schedule", "num_steps", "prediction",
                                                                            "min_snr_gamma"))
    if schedule not in schedules:
        raise ConfigError(f"diffusion.schedule must be one of {sorted(schedules)}, got {schedule!r}")
    return GaussianDiffusion(schedules[schedule](num_steps), prediction=prediction, min_snr_gamma=gamma,
                             clip_x0=config.diffusion.get("clip_x0"))


def random_videos(data: MovingMNIST, config: TrainConfig, step: int, n: int | None = None, stream: str = "data"):
    """`data.batch` of n (default `config.batch_size`) random indices,
    a pure function of (config.seed, step, stream)."""
    idx = torch.randint(len(data), (n or config.batch_size,), generator=step_generator(config.seed, step, stream))
    return data.batch(idx.tolist())


class PerFrame(nn.Module):
    """UNet3D(**unet) run with `image_mode=True`: every frame an independent image, temporal layers skipped."""

    def __init__(self, **unet):
        super().__init__()
        self.unet = UNet3D(**unet)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet(x_t, t, cond, image_mode=True)


def video_diffusion_task(config: TrainConfig, image_only: bool = False) -> Task:
    """Unconditional video diffusion on Moving MNIST: UNet3D(**model) trained by GaussianDiffusion.training_loss.

    image_only: the image-model baseline, `PerFrame`: frames are learnt (and sampled) independently.
    """
    data = MovingMNIST(**config.data)
    video_shape = (config.model["in_channels"], data.config.frames, data.config.size, data.config.size)

    def batch_fn(step: int) -> torch.Tensor:
        return random_videos(data, config, step)[0]  # (B, 1, T, H, W)

    model = PerFrame(**config.model) if image_only else UNet3D(**config.model)
    return diffusion_task(config, model, batch_fn, video_shape)


def video_folder_task(config: TrainConfig) -> Task:
    """Unconditional video diffusion on your own clips: `config.data` are the keywords of
    `tinyvdm.data.video_folder.VideoFolder` (root, frames, stride, size, channels, clips_per_video).

    The folder is opened at the first batch, so a checkpoint loads and samples without it. Each clip is decoded
    once and then kept in memory (C T size² floats: a few hundred MB for thousands of 8-frame clips at size 32).
    """
    if config.model["in_channels"] != config.data["channels"]:
        raise ConfigError(f"model.in_channels={config.model['in_channels']} must equal data.channels="
                          f"{config.data['channels']} (1: grey, 3: RGB)")
    video_shape = (config.data["channels"], config.data["frames"], config.data["size"], config.data["size"])
    clips: dict[int, torch.Tensor] = {}  # clip index -> (C, T, H, W)

    @functools.cache
    def folder():
        from tinyvdm.data.video_folder import VideoFolder  # PyAV is an optional extra
        return VideoFolder(**config.data)

    def batch_fn(step: int) -> torch.Tensor:
        data = folder()
        idx = torch.randint(len(data), (config.batch_size,), generator=step_generator(config.seed, step, "data"))
        for i in idx.tolist():
            if i not in clips:
                clips[i] = data[i][0]
        return torch.stack([clips[i] for i in idx.tolist()])  # (B, C, T, H, W)

    return diffusion_task(config, UNet3D(**config.model), batch_fn, video_shape)


def diffusion_task(config: TrainConfig, model: nn.Module, batch_fn: Callable[[int], torch.Tensor],
                   video_shape: tuple[int, ...]) -> Task:
    """`model` trained by GaussianDiffusion.training_loss on the videos of `batch_fn`, sampled unconditionally."""
    diffusion = make_diffusion(config)

    def loss_fn(model, x0, generator):
        return diffusion.training_loss(model, x0, generator=generator)

    def sample_fn(model, n, sampler="ddim", steps=50, eta=0.0, generator=None, progress=True):
        device = next(model.parameters()).device
        return sample(diffusion, model, (n, *video_shape), sampler, steps, eta=eta, generator=generator,
                      device=device, progress=progress)[0]

    return Task(model, loss_fn, batch_fn, sample_fn, diffusion, video_shape)


TASKS: dict[str, Callable[[TrainConfig], Task]] = {
    "video_diffusion": video_diffusion_task,
    "image_diffusion": lambda config: video_diffusion_task(config, image_only=True),
    "video_folder": video_folder_task,
    "t2v": lambda config: importlib.import_module("tinyvdm.pipelines.t2v").t2v_task(config),
    "frames": lambda config: importlib.import_module("tinyvdm.pipelines.frames").frames_task(config),
    "autoencoder": lambda config: importlib.import_module("tinyvdm.pipelines.latent").autoencoder_task(config),
    "latent_diffusion":
        lambda config: importlib.import_module("tinyvdm.pipelines.latent").latent_diffusion_task(config),
    "ssr": lambda config: importlib.import_module("tinyvdm.pipelines.superres").superres_task(config, "ssr"),
    "tsr": lambda config: importlib.import_module("tinyvdm.pipelines.superres").superres_task(config, "tsr"),
}


def _unet(**overrides) -> dict:
    """Every keyword of UNet3D with its default, so that each one can be overridden (`--model.heads 2`)."""
    # grad_checkpoint is the trainer's (a RUN_KEY): it changes memory, not weights
    defaults = {name: p.default for name, p in inspect.signature(UNet3D).parameters.items()
                if name != "grad_checkpoint"}
    return {**defaults, **overrides}


def _latent_unet(**overrides) -> dict:
    """`_unet` without in_channels: a latent U-Net takes its autoencoder's latent channels."""
    return {k: v for k, v in _unet(**overrides).items() if k != "in_channels"}


def _autoencoder(**overrides) -> dict:
    """Every keyword of VideoAutoencoder with its default."""
    return {name: p.default for name, p in inspect.signature(VideoAutoencoder).parameters.items()} | overrides


def _t2v_model(unet: dict, text_dim: int, text_depth: int, max_len: int = 16) -> dict:
    """A TextToVideoNet's keywords: the U-Net's (its cond_dim is the text encoder's width) and the text encoder's."""
    return {**{k: v for k, v in unet.items() if k != "cond_dim"}, "text_dim": text_dim, "text_depth": text_depth,
            "max_len": max_len}


def _moving_mnist(**overrides) -> dict:
    """Every option of the course's Moving MNIST, written out so the config alone says what the data was."""
    return {"length": 10_000, "split": "train", "seed": 0, **asdict(VIDEO_PRESETS["course"]), **overrides}


PRESETS: dict[str, TrainConfig] = {
    # trains in seconds: for tests and for trying the command line
    "tiny": TrainConfig(
        preset="tiny", model=_unet(dim=8, dim_mults=(1, 2), heads=2, head_dim=8),
        data=_moving_mnist(frames=4, size=16, digit_size=10),
        diffusion={"schedule": "cosine", "num_steps": 100, "prediction": "eps", "min_snr_gamma": None},
        batch_size=4, steps=30, lr=1e-3, min_lr=1e-4, warmup=5, ema_decay=0.99, out_dir="runs/tiny",
        ckpt_every=10, log_every=5),
    # the course's unconditional Moving MNIST model, sized for a 2-core CPU
    "course": TrainConfig(
        preset="course", model=_unet(dim=32, dim_mults=(1, 2), patch_size=4, attn_levels=(0, 1)),
        data=_moving_mnist(),
        diffusion={"schedule": "cosine", "num_steps": 1000, "prediction": "v", "min_snr_gamma": None,
                   "clip_x0": 1.0},
        batch_size=32, steps=3000, lr=2e-3, min_lr=5e-5, warmup=100, ema_decay=0.995, out_dir="runs/course"),
    # the shipped text-to-video model (data/checkpoints/t2v.json): under an hour on a 2-core CPU. The U-Net works on
    # 2x2 patches (16x16 tokens): a digit keeps its shape under a 2-pixel move, which 4x4 patches break. Each step
    # learns 16 videos and 128 single frames of other videos (joint image-video training, VDM §3): the frames
    # teach the digits at 1/8 of a video's cost, the videos the motion. v-prediction keeps x̂_0 stable at the
    # noisiest steps; min-SNR-5 weighting (Hang et al. 2023) spends less of the loss on the least noisy ones.
    "t2v": TrainConfig(
        preset="t2v", task="t2v",
        model=_t2v_model(_unet(dim=32, dim_mults=(1, 2, 4), patch_size=2, attn_levels=(1, 2)), 64, 2),
        data=_moving_mnist(),
        diffusion={"schedule": "cosine", "num_steps": 1000, "prediction": "v", "min_snr_gamma": 5.0,
                   "clip_x0": 1.0, "p_uncond": 0.1, "image_batch": 128},
        batch_size=16, steps=3200, lr=2e-3, min_lr=5e-5, warmup=100, ema_decay=0.995, out_dir="runs/t2v",
        snapshot_every=200),
    # the course model on your own videos: class folders of mp4/avi under data.root (tinyvdm.data.video_folder),
    # `python -m tinyvdm train --preset folder --data.root my_videos --out_dir runs/mine`
    "folder": TrainConfig(
        preset="folder", task="video_folder", model=_unet(dim=32, dim_mults=(1, 2), patch_size=4, attn_levels=(0, 1)),
        data={"root": "videos", "frames": 8, "stride": 1, "size": 32, "channels": 1, "clips_per_video": 1},
        diffusion={"schedule": "cosine", "num_steps": 1000, "prediction": "v", "min_snr_gamma": None,
                   "clip_x0": 1.0},
        batch_size=32, steps=3000, lr=2e-3, min_lr=5e-5, warmup=100, ema_decay=0.995, out_dir="runs/folder"),
    # text-to-video with caption dropout, in seconds: for tests
    "t2v-tiny": TrainConfig(
        preset="t2v-tiny", task="t2v",
        model=_t2v_model(_unet(dim=8, dim_mults=(1, 2), heads=2, head_dim=8), 16, 1),
        data=_moving_mnist(frames=4, size=16, digit_size=10),
        diffusion={"schedule": "cosine", "num_steps": 100, "prediction": "eps", "min_snr_gamma": None,
                   "p_uncond": 0.1, "image_batch": 0},
        batch_size=4, steps=20, lr=1e-3, min_lr=1e-4, warmup=5, ema_decay=0.99, out_dir="runs/t2v-tiny",
        ckpt_every=10, log_every=5),
    # masked frame conditioning (tinyvdm.pipelines.frames): one model generates, predicts and interpolates 16 frames
    # at 1 px per frame, whose even frames are the course's 8-frame videos (8 -> 16 by interpolation). ctx = [m ⊙ x, m].
    # dim 24 (2.2 M parameters, 4.3 MB shipped in fp16) keeps the checkpoints near their ~30 MB budget. No min-SNR
    # weighting: under v-prediction it leaves t >= 700, where only the known frames can tell the frame, 6 % of the
    # loss, and a model trained with it did not learn prediction (notebook 10). 3300 steps: ~28 min on 2 cores.
    "frames": TrainConfig(
        preset="frames", task="frames", model=_unet(dim=24, dim_mults=(1, 2, 4), patch_size=2, attn_levels=(1, 2),
                                                     ctx_channels=2),
        data=_moving_mnist(frames=16, speed=1),
        diffusion={"schedule": "cosine", "num_steps": 1000, "prediction": "v", "min_snr_gamma": None, "clip_x0": 1.0,
                   "mask_probs": (0.2, 0.3, 0.5)},
        batch_size=12, steps=3300, lr=2e-3, min_lr=5e-5, warmup=100, ema_decay=0.995, out_dir="runs/frames"),
    "frames-tiny": TrainConfig(
        preset="frames-tiny", task="frames", model=_unet(dim=8, dim_mults=(1, 2), heads=2, head_dim=8, ctx_channels=2),
        data=_moving_mnist(frames=6, size=16, digit_size=10, speed=1),
        diffusion={"schedule": "cosine", "num_steps": 100, "prediction": "v", "min_snr_gamma": None,
                   "mask_probs": (0.2, 0.3, 0.5)},
        batch_size=4, steps=10, lr=1e-3, min_lr=1e-4, warmup=2, ema_decay=0.99, out_dir="runs/frames-tiny",
        ckpt_every=10, log_every=5),
    # latent video diffusion (tinyvdm.pipelines.latent). 1: the autoencoder on single frames (10 min on a 2-core CPU,
    # 2400 steps of 8 videos' 64 frames). 2: its temporal layers alone, against flicker (2 min). Shipped as
    # data/checkpoints/autoencoder.pt. loss.latent_noise = 0.1 in run 2 (decoding perturbed latents) was measured and
    # not kept: flicker -4 % on perturbed latents, +2 % on clean ones. 3: the course's U-Net on its 4x8x8 latents, the
    # token grid of the course model's 4x4 patches; or latent-t2v below.
    "autoencoder": TrainConfig(
        preset="autoencoder", task="autoencoder", model=_autoencoder(), data=_moving_mnist(),
        loss={"kl_weight": 1e-5, "temporal_weight": 0.0, "image_mode": True, "latent_noise": 0.0},
        batch_size=8, steps=2400, lr=2e-3, min_lr=5e-5, warmup=50, ema_decay=0.995, out_dir="runs/autoencoder"),
    "autoencoder-temporal": TrainConfig(
        preset="autoencoder-temporal", task="autoencoder", model=_autoencoder(), data=_moving_mnist(),
        loss={"kl_weight": 1e-5, "temporal_weight": 1.0, "image_mode": False, "latent_noise": 0.0},
        init_from="runs/autoencoder/ckpt.pt", train_only="temporal",
        batch_size=8, steps=600, lr=1e-3, min_lr=5e-5, warmup=20, ema_decay=0.99, out_dir="runs/autoencoder-temporal"),
    "latent": TrainConfig(
        preset="latent", task="latent_diffusion",
        model={**_latent_unet(dim=32, dim_mults=(1, 2), attn_levels=(0, 1)),
               "autoencoder": "runs/autoencoder-temporal/ckpt.pt"},
        data=_moving_mnist(),
        diffusion={"schedule": "cosine", "num_steps": 1000, "prediction": "v", "min_snr_gamma": None},
        batch_size=32, steps=1000, lr=2e-3, min_lr=5e-5, warmup=100, ema_decay=0.995, out_dir="runs/latent"),
    # t2v in latent space: t2v's text encoder and U-Net on the 4x8x8 latents with 1x1 patches, 8x8 tokens where t2v
    # has 16x16: 43 GFLOP a step (the frozen encoder's included) against t2v's 132, and 1700 steps, so that with the
    # autoencoder's two runs it costs 1/3 of t2v's training FLOPs (data/checkpoints/latent.json)
    "latent-t2v": TrainConfig(
        preset="latent-t2v", task="latent_diffusion",
        model={**_t2v_model(_latent_unet(dim=32, dim_mults=(1, 2, 4), patch_size=1, attn_levels=(1, 2)), 64, 2),
               "autoencoder": "runs/autoencoder-temporal/ckpt.pt"},
        data=_moving_mnist(),
        diffusion={"schedule": "cosine", "num_steps": 1000, "prediction": "v", "min_snr_gamma": 5.0,
                   "p_uncond": 0.1, "image_batch": 128},
        batch_size=16, steps=1700, lr=2e-3, min_lr=5e-5, warmup=100, ema_decay=0.995, out_dir="runs/latent-t2v",
        snapshot_every=400),
    # both in seconds, for tests: latent-tiny reads autoencoder-tiny's checkpoint
    "autoencoder-tiny": TrainConfig(
        preset="autoencoder-tiny", task="autoencoder", model=_autoencoder(dim=8, dim_mults=(1, 2, 2)),
        data=_moving_mnist(frames=4, size=16, digit_size=10),
        loss={"kl_weight": 1e-5, "temporal_weight": 0.0, "image_mode": True, "latent_noise": 0.0},
        batch_size=4, steps=30, lr=3e-3, min_lr=1e-4, warmup=5, ema_decay=0.9, out_dir="runs/autoencoder-tiny",
        ckpt_every=10, log_every=5),
    "latent-tiny": TrainConfig(
        preset="latent-tiny", task="latent_diffusion",
        model={**_latent_unet(dim=8, dim_mults=(1, 2), heads=2, head_dim=8),
               "autoencoder": "runs/autoencoder-tiny/ckpt.pt"},
        data=_moving_mnist(frames=4, size=16, digit_size=10),
        diffusion={"schedule": "cosine", "num_steps": 100, "prediction": "eps", "min_snr_gamma": None},
        batch_size=4, steps=10, lr=1e-3, min_lr=1e-4, warmup=2, ema_decay=0.99, out_dir="runs/latent-tiny",
        ckpt_every=10, log_every=5),
    "latent-t2v-tiny": TrainConfig(
        preset="latent-t2v-tiny", task="latent_diffusion",
        model={**_t2v_model(_latent_unet(dim=8, dim_mults=(1, 2), heads=2, head_dim=8), 16, 1),
               "autoencoder": "runs/autoencoder-tiny/ckpt.pt"},
        data=_moving_mnist(frames=4, size=16, digit_size=10),
        diffusion={"schedule": "cosine", "num_steps": 100, "prediction": "eps", "min_snr_gamma": None,
                   "p_uncond": 0.1, "image_batch": 4},
        batch_size=4, steps=10, lr=1e-3, min_lr=1e-4, warmup=2, ema_decay=0.99, out_dir="runs/latent-t2v-tiny",
        ckpt_every=10, log_every=5),
    # the scaling ladder's top rungs: classic Moving MNIST (2 digits, 64x64, 20 frames). "classic" is t2v's U-Net on
    # 4x4 patches (16x16 tokens; a 28-px digit under 4-px patches is a 14-px digit under 2-px ones): 10.6 GFLOP per
    # video per step, ~1.1 s a step and ~2 h on a 2-core CPU by FLOPs against t2v, minutes on a GPU.
    "classic": TrainConfig(
        preset="classic", model=_unet(dim=32, dim_mults=(1, 2, 4), patch_size=4, attn_levels=(1, 2)),
        data=_moving_mnist(**asdict(VIDEO_PRESETS["classic"])),
        diffusion={"schedule": "cosine", "num_steps": 1000, "prediction": "v", "min_snr_gamma": 5.0, "clip_x0": 1.0},
        batch_size=16, steps=6000, lr=2e-3, min_lr=5e-5, warmup=100, ema_decay=0.995, out_dir="runs/classic"),
    # one modern GPU for about an hour: 51M parameters on 2x2 patches, 575 GFLOP per video per step (counted by
    # torch.utils.flop_counter), 37 TFLOP a step; at 35% of an H100/H200's 989 bf16 TFLOP/s, ~0.11 s a step and
    # ~1 h for 32000 steps (an estimate until benchmarks/train_step.py --preset gpu has run on one)
    "gpu": TrainConfig(
        preset="gpu", model=_unet(dim=128, dim_mults=(1, 2, 4), patch_size=2, attn_levels=(1, 2), heads=8),
        data=_moving_mnist(**asdict(VIDEO_PRESETS["classic"])),
        diffusion={"schedule": "cosine", "num_steps": 1000, "prediction": "v", "min_snr_gamma": 5.0, "clip_x0": 1.0},
        batch_size=64, steps=32000, lr=1e-3, min_lr=2e-5, warmup=1000, ema_decay=0.9995, precision="bf16",
        compile=True, out_dir="runs/gpu", ckpt_every=1000, snapshot_every=4000, log_every=50),
    # the cascade's stages (tinyvdm.pipelines.superres); SSR at dim 24 (2.1 M parameters) for the checkpoint budget. The
    # low-resolution input c, noised to a level s ~ U[0, 0.5] (the augmentation sweep's range), is concatenated to x_t.
    # Spatial: 32² -> 64² over 16 frames at 2 px per frame (the TSR stage's output, twice as big); 4x4 patches
    # (16x16 tokens, the cost of t2v's frames) and 64 single frames a step, since c already places the digit.
    # 3000 steps: 20 min on two threads of the course's 2-core Xeon (0.41 s a step).
    "ssr": TrainConfig(
        preset="ssr", task="ssr",
        model=_unet(dim=24, dim_mults=(1, 2, 4), patch_size=4, ctx_channels=1, ctx_level=True),
        data=_moving_mnist(frames=16, size=64, digit_size=28, speed=2),
        diffusion={"schedule": "cosine", "num_steps": 1000, "prediction": "v", "min_snr_gamma": 5.0, "clip_x0": 1.0,
                   "factor": 2, "s_max": 0.5, "p_uncond": 0.1, "image_batch": 64},
        batch_size=8, steps=3000, lr=2e-3, min_lr=5e-5, warmup=100, ema_decay=0.995, out_dir="runs/ssr"),
    # Temporal: 8 -> 16 frames at 32²: ground truth at 1 px per frame, whose even frames are the base's 2 px videos.
    # Videos only (a single frame of c says nothing about motion); 2x2 patches as in t2v. dim 24 and 3000 steps (20 min
    # on two threads): about the frames model's size and budget, so the two TSR methods (notebook 09) compare fairly.
    "tsr": TrainConfig(
        preset="tsr", task="tsr",
        model=_unet(dim=24, dim_mults=(1, 2, 4), patch_size=2, ctx_channels=1, ctx_level=True),
        data=_moving_mnist(frames=16, speed=1),
        diffusion={"schedule": "cosine", "num_steps": 1000, "prediction": "v", "min_snr_gamma": 5.0, "clip_x0": 1.0,
                   "factor": 2, "s_max": 0.5, "p_uncond": 0.1, "image_batch": 0},
        batch_size=12, steps=3000, lr=2e-3, min_lr=5e-5, warmup=100, ema_decay=0.995, out_dir="runs/tsr"),
    # both in seconds, for tests; they chain after t2v-tiny: (1, 4, 16, 16) -> tsr (1, 8, 16, 16) -> ssr (1, 8, 32, 32)
    "ssr-tiny": TrainConfig(
        preset="ssr-tiny", task="ssr",
        model=_unet(dim=8, dim_mults=(1, 2), heads=2, head_dim=8, patch_size=2, ctx_channels=1, ctx_level=True),
        data=_moving_mnist(frames=8, size=32, digit_size=20, speed=2),
        diffusion={"schedule": "cosine", "num_steps": 100, "prediction": "v", "min_snr_gamma": None,
                   "factor": 2, "s_max": 0.5, "p_uncond": 0.1, "image_batch": 4},
        batch_size=2, steps=10, lr=1e-3, min_lr=1e-4, warmup=2, ema_decay=0.99, out_dir="runs/ssr-tiny",
        ckpt_every=10, log_every=5),
    "tsr-tiny": TrainConfig(
        preset="tsr-tiny", task="tsr",
        model=_unet(dim=8, dim_mults=(1, 2), heads=2, head_dim=8, ctx_channels=1, ctx_level=True),
        data=_moving_mnist(frames=8, size=16, digit_size=10, speed=1),
        diffusion={"schedule": "cosine", "num_steps": 100, "prediction": "v", "min_snr_gamma": None,
                   "factor": 2, "s_max": 0.5, "p_uncond": 0.1, "image_batch": 0},
        batch_size=2, steps=10, lr=1e-3, min_lr=1e-4, warmup=2, ema_decay=0.99, out_dir="runs/tsr-tiny",
        ckpt_every=10, log_every=5),
}

# the anomaly detector's model of normal videos (tinyvdm.pipelines.anomaly, data/checkpoints/anomaly.pt): the frames
# model on the course's 8 frames at 2 px per frame without the digit 9 (the benchmark's unseen class), trained mostly
# on prediction masks, since it scores each frame by how well its past predicts it; generation masks for the
# reconstruction score. 4400 steps of 16 videos: ~27 min on 2 cores.
PRESETS["anomaly"] = replace(PRESETS["frames"], preset="anomaly", data=_moving_mnist(classes=tuple(range(9))),
                             diffusion={**PRESETS["frames"].diffusion, "mask_probs": (0.2, 0.8, 0.0)},
                             batch_size=16, steps=4400, out_dir="runs/anomaly")
