"""CDC-MMPG (seed ``cdc-mmpg.txt``): Fast Domain Adaptor + AnchorFrame Distribution Reasoner."""

from paramcast.methods.cdc_mmpg.config import CDCMMPGConfig
from paramcast.methods.cdc_mmpg.model import CDCMMPG

__all__ = ["CDCMMPG", "CDCMMPGConfig"]
