"""What a result is worth: Fréchet distances, the Moving MNIST evaluator, PSNR / SSIM, AUROC and average precision."""
from .evaluator import Evaluator, fit_bouncing_motion, shuffle_frames
from .frechet import FrechetScore, frechet_distance, frechet_distance_gaussians
from .pixels import patch_frechet, psnr, ssim
from .ranking import auroc, average_precision, roc_curve

__all__ = ["Evaluator", "fit_bouncing_motion", "shuffle_frames", "FrechetScore", "frechet_distance",
           "frechet_distance_gaussians", "psnr", "ssim", "patch_frechet", "auroc", "average_precision", "roc_curve"]
