"""Diffusion on any tensor with any denoiser: schedules, the DDPM chain, score SDEs, samplers, guidance.

Nothing here knows about video or U-Nets; `toy` holds test beds whose exact scores are known.
"""
from .ddpm import GaussianDiffusion
from .guidance import classifier_free_guidance, drop_condition
from .likelihood import bits_per_dim
from .samplers import NFECounter, dpm_solver_pp, euler_maruyama, predictor_corrector, probability_flow_ode
from .schedules import (alpha_bar, cosine_beta_schedule, linear_beta_schedule, sigmoid_beta_schedule, snr,
                        step_to_time, time_to_step)
from .sde import SDE, VESDE, VPSDE, DiscreteVPSDE, SubVPSDE

__all__ = [
    "GaussianDiffusion",
    "classifier_free_guidance", "drop_condition",
    "bits_per_dim",
    "NFECounter", "dpm_solver_pp", "euler_maruyama", "predictor_corrector", "probability_flow_ode",
    "alpha_bar", "cosine_beta_schedule", "linear_beta_schedule", "sigmoid_beta_schedule", "snr",
    "step_to_time", "time_to_step",
    "SDE", "VESDE", "VPSDE", "DiscreteVPSDE", "SubVPSDE",
]
