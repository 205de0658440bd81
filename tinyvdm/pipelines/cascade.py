"""A cascade (Imagen Video, Ho et al. 2022): a base text-to-video model, then stages that add frames or pixels.

    cascade = Cascade.load()  # shipped: base (8 frames, 32²) → TSR (16 frames, 32²) → SSR (16 frames, 64²)
    videos = cascade(["the digit 7 moves left"], base={"guidance": 3.0}, ssr={"aug_level": 0.2, "steps": 10})

Each stage's options (sampler, steps, guidance, aug_level, ...) go in a dict under its name. A stage is anything
with `name`, `in_shape` and `out_shape` (the (C, T, H, W) it takes and makes) that is called as
`stage(video, generator=, progress=, **options) -> video`: a `SuperResolution`, or a frame-interpolation model
(`frames.Interpolation`). The default TSR is the frames model interpolating; the imagen-style TSR stage (shipped too,
exported by `benchmarks/cascade.py --export runs/tsr`) is `Cascade.load(tsr=CHECKPOINTS["tsr"])`.
Sizes must chain: the base makes stages[0].in_shape, stage i makes stage i + 1's in_shape.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import torch

from .frames import Interpolation
from .superres import SuperResolution
from .t2v import CHECKPOINT as BASE_CHECKPOINT
from .t2v import TextToVideo

CHECKPOINTS = {name: BASE_CHECKPOINT.with_name(f"{name}.pt") for name in ("tsr", "ssr")}  # where stages export to
SHIPPED = {"tsr": BASE_CHECKPOINT.with_name("frames.pt"), "ssr": CHECKPOINTS["ssr"]}


class Stage(Protocol):
    name: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def __call__(self, video: torch.Tensor, *, generator: torch.Generator, progress: bool, **options) -> torch.Tensor:
        ...


class Cascade:
    """Prompts → base videos → each stage in turn; one generator draws every stage's noise."""

    def __init__(self, base: TextToVideo, stages: Sequence[Stage]):
        self.base, self.stages = base, list(stages)
        check_chain([("base", None, tuple(base.video_shape))]
                    + [(s.name, tuple(s.in_shape), tuple(s.out_shape)) for s in self.stages])

    @classmethod
    def load(cls, base: str | Path = BASE_CHECKPOINT, tsr: str | Path = SHIPPED["tsr"],
             ssr: str | Path = SHIPPED["ssr"], device: str = "cpu") -> "Cascade":
        """The shipped base → TSR (the frames model) → SSR cascade, or the checkpoints given."""
        stages = []
        for name, path in (("tsr", tsr), ("ssr", ssr)):
            if not Path(path).exists():
                raise FileNotFoundError(f"no {name} stage checkpoint at {path}; train one with `python -m tinyvdm "
                                        f"train --preset {name}`, then `python benchmarks/cascade.py --export "
                                        f"runs/{name}`")
            stages.append(load_stage(path, name, device))
        return cls(TextToVideo.load(base, device=device), stages)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.stages[-1].out_shape) if self.stages else tuple(self.base.video_shape)

    def __call__(self, prompts: str | list[str], *, seed: int = 0, generator: torch.Generator | None = None,
                 progress: bool = False, return_stages: bool = False, **options: dict):
        """Videos (B, C, T, H, W) of the last stage; with return_stages, every stage's videos, base first."""
        names = ["base"] + [s.name for s in self.stages]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"options for unknown stage(s) {unknown}; this cascade's stages are {names}")
        generator = generator or torch.Generator(self.base.net.null_ids.device).manual_seed(seed)
        videos = [self.base(prompts, generator=generator, progress=progress, **options.get("base", {}))]
        for stage in self.stages:
            videos.append(stage(videos[-1], generator=generator, progress=progress, **options.get(stage.name, {})))
        return videos if return_stages else videos[-1]


def load_stage(path: str | Path, name: str, device: str = "cpu") -> Stage:
    """A stage from a checkpoint: an "ssr" or "tsr" super-resolution model, or a "frames" model as masked-interpolation
    TSR (`tinyvdm.pipelines.frames.Interpolation`)."""
    from ..train import read_checkpoint
    if read_checkpoint(path, resumable=False)["config"]["task"] == "frames":
        return Interpolation.load(path, device=device, name=name)
    return SuperResolution.load(path, device=device, name=name)


def check_chain(shapes: list[tuple[str, tuple | None, tuple]]) -> None:
    """Fail unless each (name, in_shape, out_shape) takes the (C, T, H, W) the one before it makes."""
    seen = set()
    for (before, _, made), (name, takes, _) in zip(shapes, shapes[1:]):
        if name in seen or name == shapes[0][0]:
            raise ValueError(f"two cascade stages are named {name!r}; names must differ (their options go by name)")
        seen.add(name)
        if takes != made:
            raise ValueError(f"cascade stage {name!r} takes videos (C, T, H, W) = {takes}, but stage {before!r} "
                             f"before it makes {made}")
