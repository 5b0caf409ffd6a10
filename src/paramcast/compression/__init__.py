"""Quantisation of the tensors that cross the network: fp32, fp16, blockwise int8 and NF4.

docs/design.md: quantisation (not zstd, ratio 0.93 on fp32 weights) is what shrinks payloads, and CD-CCA's
DWC ships its weight deltas as 4-bit NormalFloat. The codes come from bitsandbytes (CPU); see
:mod:`paramcast.compression._quant` for the layout of the parts that travel and the error bounds.
Only :mod:`paramcast.wire` should need these functions.
"""

from paramcast.compression._quant import (
    BLOCKSIZES,
    NF4_LEVELS,
    SCHEMES,
    dequantise,
    error_bound,
    part_specs,
    payload_nbytes,
    quantise,
)

__all__ = [
    "BLOCKSIZES",
    "NF4_LEVELS",
    "SCHEMES",
    "dequantise",
    "error_bound",
    "part_specs",
    "payload_nbytes",
    "quantise",
]
