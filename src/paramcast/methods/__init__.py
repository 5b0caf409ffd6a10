"""The seeds' systems, one folder each: cdc_mmpg, stablesynthnet, cd_cca."""

from paramcast.methods.base import Method
from paramcast.methods.cd_cca import CDCCA, MLLMSourceOnly  # noqa: F401 - registers "cd-cca", "mllm-source-only"
from paramcast.methods.cdc_mmpg import CDCMMPG  # noqa: F401 - registers "cdc-mmpg"
from paramcast.methods.stablesynthnet.model import StableSynthNet  # noqa: F401 - registers "stablesynthnet"

__all__ = ["Method"]
