"""paramcast: cloud-device collaborative adaptation of on-device multi-modal models."""

from paramcast.methods.base import Method
from paramcast.registry import available, create, register
from paramcast.types import HeadParams, Upload, WeightDelta

__all__ = ["HeadParams", "Method", "Upload", "WeightDelta", "available", "create", "register"]
__version__ = "0.1.0"
