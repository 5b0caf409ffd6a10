"""paramcast: cloud-device collaborative adaptation of on-device multi-modal models."""

import logging

# bitsandbytes (imported by peft) warns that it cannot fetch an optional CPU kernel from the hub;
# paramcast never downloads anything at run time and uses bitsandbytes' own CPU path.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
# (so the imports below come after it: E402 is intended)

from paramcast.catalog import available, create  # noqa: E402
from paramcast.methods.base import Method  # noqa: E402
from paramcast.registry import register  # noqa: E402
from paramcast.types import HeadParams, Upload, WeightDelta  # noqa: E402

__all__ = ["HeadParams", "Method", "Upload", "WeightDelta", "available", "create", "register"]
__version__ = "0.1.0"
