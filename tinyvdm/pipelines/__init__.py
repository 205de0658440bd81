"""What the course builds from a trained denoiser: sampling by name, text-to-video."""
from .sampling import SAMPLERS, sample

__all__ = ["SAMPLERS", "sample"]
