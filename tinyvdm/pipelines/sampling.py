"""Any sampler of the course, by name, on a trained discrete-time model, with classifier-free guidance.

    x, nfe = sample(diffusion, model, shape, sampler="dpmpp", steps=20, cond=ids, guidance=3.0, null_cond=null)

"ancestral" runs all N steps of the DDPM chain; "ddim", "dpmpp" (DPM-Solver++(2M)), "dpmpp_sde" (its SDE
version, SDE-DPM-Solver++(2M)), "euler_maruyama", "pc" (predictor–corrector) and "ode" (probability-flow ODE,
Heun) run `steps` steps of their grids.
`nfe` counts model calls; a guided call evaluates the conditional and unconditional model in one batch.
"""
from __future__ import annotations

from functools import partial

import torch

from ..diffusion import (GaussianDiffusion, NFECounter, classifier_free_guidance, dpm_solver_pp, euler_maruyama,
                         predictor_corrector, probability_flow_ode)

SAMPLERS = ("ancestral", "ddim", "dpmpp", "dpmpp_sde", "euler_maruyama", "pc", "ode")


@torch.inference_mode()
def sample(diffusion: GaussianDiffusion, model, shape, sampler: str = "dpmpp", steps: int = 20, cond=None,
           guidance: float = 1.0, null_cond=None, eta: float = 0.0, generator: torch.Generator | None = None,
           device=None, progress: bool = False) -> tuple[torch.Tensor, int]:
    """Samples of `shape` and the number of model evaluations they took."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
    if guidance != 1.0 and cond is not None and null_cond is None:
        raise ValueError("guidance needs null_cond, the condition that means 'no condition'")
    counted = NFECounter(model)
    denoiser = (classifier_free_guidance(counted, guidance, null_cond) if guidance != 1.0 and cond is not None
                else counted)
    kwargs = dict(generator=generator, device=device, progress=progress)
    if sampler == "ancestral":
        x = diffusion.sample(denoiser, shape, cond, **kwargs)
    elif sampler == "ddim":
        x = diffusion.ddim_sample(denoiser, shape, steps, eta=eta, cond=cond, **kwargs)
    else:
        solver = {"dpmpp": dpm_solver_pp, "dpmpp_sde": partial(dpm_solver_pp, eta=1.0),
                  "euler_maruyama": euler_maruyama, "pc": predictor_corrector, "ode": probability_flow_ode}[sampler]
        x = solver(diffusion.sde(), diffusion.score_fn(denoiser, cond), shape, steps, **kwargs)
    return x, counted.nfe
