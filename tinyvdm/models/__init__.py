"""Denoisers and encoders: the 3D U-Net with temporal attention, its attention layers, the caption encoder."""
from .attention import (Attention, CrossAttention, RelativePositionBias, SpatialAttention,
                        TemporalAttention)
from .text import TextEncoder, Tokenizer
from .unet3d import UNet3D

__all__ = ["UNet3D", "Attention", "SpatialAttention", "TemporalAttention", "CrossAttention",
           "RelativePositionBias", "TextEncoder", "Tokenizer"]
