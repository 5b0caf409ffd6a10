"""What ``/openapi.json`` says beyond FastAPI's defaults: the bearer scheme and the real error answers.

FastAPI would declare no security scheme (the service reads ``Authorization`` itself) and only its
default 422 ``HTTPValidationError`` schema. A client generated from the document must instead see
that ``/v1/adapt`` and ``/v1/history`` take ``Authorization: Bearer <token>`` and that every refusal
is ``{"error": <code>, "detail": <sentence>}`` with the codes of docs/service.md ("Refusals").
:data:`BEARER` is a FastAPI security dependency with ``auto_error=False``: it only documents the
scheme; :class:`~paramcast.cloud.auth.TokenStore` still decides (401 ``unauthenticated``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

__all__ = ["BEARER", "ErrorBody", "errors"]

BEARER = Depends(HTTPBearer(auto_error=False, scheme_name="bearer", bearerFormat="pct_<43 url-safe characters>",
                            description="per-device token minted by `paramcast serve --issue-token DEVICE`"))


class ErrorBody(BaseModel):
    """Every refusal (4xx) and every server bug (500)."""

    error: str = Field(description="machine-readable code, e.g. bad_payload, unauthenticated, body_too_large")
    detail: str = Field(description="what is wrong and, where possible, how to fix it")


# status -> (description, codes that route may answer with it); the codes are listed in the description
_WHY = {
    400: "malformed body or parameters",
    401: "missing, malformed or unknown bearer token (WWW-Authenticate: Bearer)",
    403: "the body names another device than the token's",
    404: "unknown route, or no history store",
    409: "the device runs another model version",
    413: "body above the server's limit",
    422: "well-formed but wrong shape / request",
    500: "a bug in the server (never the answer to bad input)",
}


def errors(**codes: list[str]) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for a route: ``errors(s400=["bad_payload"], s401=["unauthenticated"])``."""
    out: dict[int | str, dict[str, Any]] = {}
    for key, names in {**codes, "s500": ["internal"]}.items():
        status = int(key[1:])
        entry: dict[str, Any] = {"model": ErrorBody, "description": f"{_WHY[status]}: error = {' | '.join(names)}"}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Bearer realm="paramcast"'}}
        out[status] = entry
    return out


ADAPT = errors(s400=["bad_payload", "bad_quant", "wrong_method", "wrong_task", "non_finite", "bad_request"],
               s401=["unauthenticated"], s403=["forbidden"], s409=["model_version_mismatch"],
               s413=["body_too_large"], s422=["bad_shape", "invalid_request"])
HISTORY = errors(s400=["bad_history", "wrong_task", "bad_request"], s401=["unauthenticated"], s403=["forbidden"],
                 s404=["history_disabled"], s413=["body_too_large"])
PLAIN = errors()
