"""paramcast: cloud-device collaborative adaptation of on-device multi-modal models."""

import logging

# bitsandbytes (imported by peft) warns that it cannot fetch an optional CPU kernel from the hub;
# paramcast never downloads anything at run time and uses bitsandbytes' own CPU path.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from paramcast.methods.base import Method
from paramcast.registry import available, create, register
from paramcast.types import HeadParams, Upload, WeightDelta

__all__ = ["HeadParams", "Method", "Upload", "WeightDelta", "available", "create", "register"]
__version__ = "0.1.0"
