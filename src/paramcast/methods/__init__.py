"""The seeds' systems, one folder each: cdc_mmpg, stablesynthnet, cd_cca (imported on first use by
:mod:`paramcast.catalog`: it loads peft and the MLLMs)."""

from paramcast.methods.base import Method
from paramcast.methods.cdc_mmpg import CDCMMPG  # noqa: F401 - registers "cdc-mmpg"
from paramcast.methods.stablesynthnet.model import StableSynthNet  # noqa: F401 - registers "stablesynthnet"

__all__ = ["Method"]
