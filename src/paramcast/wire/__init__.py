"""The only code that turns payloads into bytes and back (the protocol: docs/wire.md).

* :mod:`paramcast.wire.message` — uploads, heads and deltas: :func:`encode`, :func:`decode`,
  :func:`nbytes`, :func:`tensor_nbytes` (re-exported here);
* :mod:`paramcast.wire.history` — the ``POST /v1/history`` body: ``encode_history``, ``decode_history``;
* :mod:`paramcast.wire._container` — what both share: the safetensors header reader, the digest and
  the error hierarchy (:class:`WireError`, with ``history.HistoryError`` below it).
"""

from paramcast.wire import history
from paramcast.wire.message import (
    MAX_ELEMENTS,
    MAX_INDEX,
    SCHEMA_VERSION,
    WireError,
    decode,
    encode,
    nbytes,
    tensor_nbytes,
)

__all__ = ["MAX_ELEMENTS", "MAX_INDEX", "SCHEMA_VERSION", "WireError", "decode", "encode", "history", "nbytes",
           "tensor_nbytes"]
