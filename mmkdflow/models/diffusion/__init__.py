"""Diffusion building blocks of DiffKD (knowledge diffusion)."""
from .autoencoder import LinearAutoencoder
from .bottleneck import DiffusionBottleneck
from .ddim_schedule import DDIMSchedule
from .noise_adapter import FeatureNoiseAdapter, VectorNoiseAdapter
from .noise_predictor import FeatureNoisePredictor, VectorNoisePredictor
from .shapes import from_map, to_map

__all__ = [
    'DDIMSchedule', 'DiffusionBottleneck', 'FeatureNoisePredictor',
    'VectorNoisePredictor', 'FeatureNoiseAdapter', 'VectorNoiseAdapter',
    'LinearAutoencoder', 'to_map', 'from_map'
]
