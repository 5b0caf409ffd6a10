"""The seeds' systems, one folder each: fda_adr (CDC-MMPG), stablesynthnet, cd_cca."""

from paramcast.methods.base import Method

__all__ = ["Method"]
