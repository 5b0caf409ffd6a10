"""The device side: an HTTP client that uploads, verifies, applies and falls back.

Never imports :mod:`paramcast.cloud`; the two meet only in :mod:`paramcast.types` and
:mod:`paramcast.wire`.
"""

from paramcast.device.client import AdaptResult, DeviceClient, DeviceError
from paramcast.wire.history import encode_history

__all__ = ["AdaptResult", "DeviceClient", "DeviceError", "encode_history"]
