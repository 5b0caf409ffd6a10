"""CD-CCA (seed ``cd-cca.txt``): cloud-device collaborative continual adaptation of an on-device MLLM.

UTS (uplink, :mod:`.uts`), AKD (cloud, :mod:`.akd`), DWC (downlink, :mod:`.dwc`), the tiny teacher and
student MLLMs (:mod:`.model`), the VQA / captioning tasks (:mod:`.tasks`) and the method
(:mod:`.method`).
"""

from paramcast.methods.cd_cca.akd import AdapterKD, AKDConfig, adapter_parameters, add_adapters
from paramcast.methods.cd_cca.dwc import DWCConfig, DynamicWeightCompression
from paramcast.methods.cd_cca.method import (
    CDCCA,
    CDCCAConfig,
    PretrainConfig,
    Pretrained,
    SourceOnly,
    pretrain,
)
from paramcast.methods.cd_cca.model import MLLM, MLLMConfig, TokenLayout, VisionEncoder
from paramcast.methods.cd_cca.uts import UncertaintyTokenSampler, UTSConfig, UTSUpload, unpack_tokens

__all__ = [
    "AKDConfig", "AdapterKD", "CDCCA", "CDCCAConfig", "DWCConfig", "DynamicWeightCompression", "MLLM",
    "MLLMConfig", "PretrainConfig", "Pretrained", "SourceOnly", "TokenLayout", "UTSConfig", "UTSUpload",
    "UncertaintyTokenSampler", "VisionEncoder", "adapter_parameters", "add_adapters", "pretrain",
    "unpack_tokens",
]
