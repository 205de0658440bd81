"""Quality against cost of every sampler on the analytic test bed.

    python benchmarks/sampler_nfe.py [--samples 50000] [--seeds 2] [--threads 1]

Data: `toy.ring_mixture()` (six anisotropic 2-D Gaussians). Chain: linear DDPM schedule, N = 1000. Model: the
exact denoiser of that chain, so the only error left is the sampler's. Every SDE sampler runs on the same chain
through `diffusion.sde()` and `diffusion.score_fn(model)`. NFE is counted by `NFECounter`, not assumed.
Error: `moment_kl` of the samples (KL of the fitted component weights and Gaussians against the true ones),
averaged over seeds; `exact samples` is that error for draws from the mixture itself, the floor at this n.
The table ends with the NFE each sampler needs to reach the error of ancestral sampling with 1000 steps (with the
default posterior variance β̃_t; "var=beta" is the other fixed variance of DDPM, σ_t² = β_t).
"""
from __future__ import annotations

import argparse
import time

import torch

from tinyvdm.diffusion import (GaussianDiffusion, NFECounter, dpm_solver_pp, euler_maruyama, linear_beta_schedule,
                               predictor_corrector, probability_flow_ode)
from tinyvdm.diffusion.toy import ring_mixture

SWEEPS = {  # sampler: steps to try
    "ancestral": [1000],
    "ancestral, var=beta": [1000],
    "DDIM (eta=0)": [5, 10, 15, 20, 25, 35, 50, 100, 200],
    "Euler-Maruyama": [25, 50, 100, 200, 500],
    "predictor-corrector": [10, 25, 50, 100, 250],
    "PF-ODE (Heun)": [3, 5, 8, 10, 15, 25, 50],
    "DPM-Solver++(2M)": [5, 8, 10, 12, 15, 20, 25, 35, 50],
    "SDE-DPM-Solver++(2M)": [10, 15, 20, 25, 35, 50, 100],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    mixture = ring_mixture()
    diffusion = GaussianDiffusion(linear_beta_schedule(1000))
    exact = mixture.denoiser(diffusion)
    shape = (args.samples, 2)
    sde = diffusion.sde()
    run = {
        "ancestral": lambda model, steps, g: diffusion.sample(model, shape, generator=g),
        "ancestral, var=beta": lambda model, steps, g: diffusion.sample(model, shape, variance="large", generator=g),
        "DDIM (eta=0)": lambda model, steps, g: diffusion.ddim_sample(model, shape, steps, generator=g),
        "Euler-Maruyama": lambda model, steps, g: euler_maruyama(sde, diffusion.score_fn(model), shape, steps,
                                                                 generator=g),
        "predictor-corrector": lambda model, steps, g: predictor_corrector(sde, diffusion.score_fn(model), shape,
                                                                           steps, generator=g),
        "PF-ODE (Heun)": lambda model, steps, g: probability_flow_ode(sde, diffusion.score_fn(model), shape, steps,
                                                                      generator=g),
        "DPM-Solver++(2M)": lambda model, steps, g: dpm_solver_pp(sde, diffusion.score_fn(model), shape, steps,
                                                                  generator=g),
        "SDE-DPM-Solver++(2M)": lambda model, steps, g: dpm_solver_pp(sde, diffusion.score_fn(model), shape, steps,
                                                                      eta=1.0, generator=g),
    }

    floor = sum(mixture.moment_kl(mixture.sample(args.samples, torch.Generator().manual_seed(s))[0])
                for s in range(args.seeds)) / args.seeds
    print(f"test bed: {mixture}, {diffusion}, {args.samples} samples x {args.seeds} seeds")
    print(f"error = moment KL; exact samples from the mixture: {floor:.5f}\n")
    print(f"{'sampler':<22}{'steps':>6}{'NFE':>6}{'error':>10}{'seconds':>9}")
    results = {}
    for name, sweep in SWEEPS.items():
        for steps in sweep:
            errors, nfe, start = [], 0, time.perf_counter()
            for seed in range(args.seeds):
                model = NFECounter(exact)
                x = run[name](model, steps, torch.Generator().manual_seed(1000 + seed))
                errors.append(mixture.moment_kl(x))
                nfe = model.nfe
            seconds = (time.perf_counter() - start) / args.seeds
            results.setdefault(name, []).append((nfe, sum(errors) / len(errors), seconds))
            print(f"{name:<22}{steps:>6}{nfe:>6}{results[name][-1][1]:>10.5f}{seconds:>9.2f}", flush=True)

    target_nfe, target, target_seconds = results["ancestral"][0]
    print(f"\nNFE needed to reach the error of ancestral@{target_nfe} ({target:.5f}):")
    for name, rows in list(results.items())[1:]:
        reached = [(nfe, seconds) for nfe, error, seconds in rows if error <= target]
        verdict = f"{reached[0][0]:>5}   ({target_seconds / reached[0][1]:.0f}x faster than ancestral)" if reached \
            else f"  not reached with up to {rows[-1][0]} NFE"
        print(f"  {name:<22}{verdict}")


if __name__ == "__main__":
    main()
