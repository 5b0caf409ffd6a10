"""The seeds' systems, one folder each: fda_adr (CDC-MMPG), stablesynthnet, cd_cca."""

from paramcast.methods.base import Method
from paramcast.methods.cd_cca import CDCCA, MLLMSourceOnly  # noqa: F401 - registers "cd-cca", "mllm-source-only"
from paramcast.methods.fda_adr import CDCMMPG  # noqa: F401 - registers "cdc-mmpg"
from paramcast.methods.stablesynthnet.model import StableSynthNet  # noqa: F401 - registers "stablesynthnet"

__all__ = ["Method"]
