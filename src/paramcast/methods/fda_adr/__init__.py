"""CDC-MMPG (seed ``cdc-mmpg.txt``): Fast Domain Adaptor + AnchorFrame Distribution Reasoner."""

from paramcast.methods.fda_adr.cdc_mmpg import CDCMMPG
from paramcast.methods.fda_adr.config import CDCMMPGConfig

__all__ = ["CDCMMPG", "CDCMMPGConfig"]
