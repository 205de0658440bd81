"""Denoisers and encoders: the 3D U-Net with temporal attention, its attention layers, the caption encoder,
the video autoencoder of latent diffusion."""
from .attention import (Attention, CrossAttention, RelativePositionBias, SpatialAttention,
                        TemporalAttention)
from .autoencoder import DiagonalGaussian, VideoAutoencoder
from .text import TextEncoder, Tokenizer
from .unet3d import UNet3D, freeze_spatial

__all__ = ["UNet3D", "freeze_spatial", "VideoAutoencoder", "DiagonalGaussian", "Attention", "SpatialAttention",
           "TemporalAttention", "CrossAttention", "RelativePositionBias", "TextEncoder", "Tokenizer"]
