"""Data for the course: shipped MNIST digits, Moving MNIST videos with captions, the anomaly benchmark."""
from .anomalies import AnomalyBenchmark, normal_classes
from .mnist import load_digits
from .moving_mnist import (DIRECTIONS, HELD_OUT_PHRASINGS, PHRASINGS, PRESETS, MovingMNIST,
                           MovingMNISTConfig, caption, make_config)

__all__ = ["load_digits", "MovingMNIST", "MovingMNISTConfig", "PRESETS", "DIRECTIONS",
           "PHRASINGS", "HELD_OUT_PHRASINGS", "caption", "make_config", "AnomalyBenchmark", "normal_classes"]
