"""Every rejection the service makes: a 4xx with a JSON body ``{"error": ..., "detail": ...}``.

``error`` is a short machine-readable code, ``detail`` a sentence saying what is wrong and, where
possible, how to fix it. Only genuine server bugs become a 500 (see :mod:`paramcast.cloud.app`).
"""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """A request the service refuses; ``status`` is a 4xx code."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "detail": self.detail}
