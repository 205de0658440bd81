"""What a result is worth: Fréchet distances and the Moving MNIST evaluator."""
from .evaluator import Evaluator, fit_bouncing_motion, shuffle_frames
from .frechet import FrechetScore, frechet_distance, frechet_distance_gaussians

__all__ = ["Evaluator", "fit_bouncing_motion", "shuffle_frames", "FrechetScore", "frechet_distance",
           "frechet_distance_gaussians"]
