"""Backbones that the downstream packages lack (students of paper rows)."""
from .mobilenet_v1 import DepthwiseSeparableConv, MobileNetV1

__all__ = ['DepthwiseSeparableConv', 'MobileNetV1']
