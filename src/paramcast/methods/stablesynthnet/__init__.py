"""StableSynthNet (seed ``stablesynthnet.txt``): DCT + ODS + TDE around a one-frame hypernetwork."""

from paramcast.methods.stablesynthnet.config import StableSynthNetConfig
from paramcast.methods.stablesynthnet.model import StableSynthNet, TemplateBank, renormalise_template

__all__ = ["StableSynthNet", "StableSynthNetConfig", "TemplateBank", "renormalise_template"]
