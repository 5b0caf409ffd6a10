"""CD-CCA (seed ``cd-cca.txt``): cloud-device collaborative continual adaptation of an on-device MLLM.

UTS (uplink, :mod:`.uts`), AKD (cloud, :mod:`.akd`), DWC (downlink, :mod:`.dwc`), the tiny teacher and
student MLLMs (:mod:`paramcast.models.mllm`, shared with the baselines of its tables), the VQA /
captioning tasks (:mod:`paramcast.models.mllm_tasks`) and the method with its
device and cloud halves (:mod:`.method`).
"""

from paramcast.methods.cd_cca.akd import AdapterKD, AKDConfig, adapter_parameters, add_adapters
from paramcast.methods.cd_cca.dwc import DWCConfig, DynamicWeightCompression
from paramcast.methods.cd_cca.method import (
    CDCCA,
    CDCCACloud,
    CDCCAConfig,
    CDCCADevice,
    MLLMSourceOnly,
    PretrainConfig,
    Pretrained,
    mllm_shapes,
    pretrain,
)
from paramcast.methods.cd_cca.uts import UncertaintyTokenSampler, UTSConfig, unpack_tokens
from paramcast.models.mllm import MLLM, MLLMConfig, TokenLayout, VisionEncoder

__all__ = [
    "AKDConfig", "AdapterKD", "CDCCA", "CDCCACloud", "CDCCAConfig", "CDCCADevice", "DWCConfig",
    "DynamicWeightCompression", "MLLM", "MLLMConfig", "MLLMSourceOnly", "PretrainConfig", "Pretrained",
    "TokenLayout", "UTSConfig", "UncertaintyTokenSampler", "VisionEncoder", "adapter_parameters", "add_adapters",
    "mllm_shapes", "pretrain", "unpack_tokens",
]
