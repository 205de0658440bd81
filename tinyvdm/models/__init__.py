"""Denoisers and encoders: the 3D U-Net with temporal attention, and its attention layers."""
from .attention import (Attention, CrossAttention, RelativePositionBias, SpatialAttention,
                        TemporalAttention)
from .unet3d import UNet3D

__all__ = ["UNet3D", "Attention", "SpatialAttention", "TemporalAttention", "CrossAttention",
           "RelativePositionBias"]
