"""Diffusion building blocks of DiffKD (knowledge diffusion)."""
from .autoencoder import LinearAutoencoder
from .bottleneck import DiffusionBottleneck
from .ddim_schedule import DDIMSchedule
from .noise_adapter import FeatureNoiseAdapter, VectorNoiseAdapter
from .noise_predictor import FeatureNoisePredictor, VectorNoisePredictor

__all__ = [
    'DDIMSchedule', 'DiffusionBottleneck', 'FeatureNoisePredictor',
    'VectorNoisePredictor', 'FeatureNoiseAdapter', 'VectorNoiseAdapter',
    'LinearAutoencoder'
]
