"""paramcast: cloud-device collaborative adaptation of on-device multi-modal models.

The names below are imported on first use (PEP 562), so ``import paramcast`` (and the CLI's
``--help``) does not load torch.
"""

import importlib
import logging

# bitsandbytes (imported by peft) warns that it cannot fetch an optional CPU kernel from the hub;
# paramcast never downloads anything at run time and uses bitsandbytes' own CPU path.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
# transformers imports torchao (installed with executorch, the [export] extra) to probe its quantizer;
# torchao then warns that its CUDA kernels cannot load on the CPU wheel, and registers Enums that
# torch.utils._pytree calls deprecated. Neither is about paramcast, and both printed on every command.
logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

_LAZY = {"Method": "paramcast.methods.base", "available": "paramcast.catalog", "create": "paramcast.catalog",
         "register": "paramcast.registry", "HeadParams": "paramcast.types", "Upload": "paramcast.types",
         "WeightDelta": "paramcast.types"}
__all__ = ["HeadParams", "Method", "Upload", "WeightDelta", "available", "create", "register"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'paramcast' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
