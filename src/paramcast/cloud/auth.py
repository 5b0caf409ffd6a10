"""Per-device bearer tokens, stored only as SHA-256 digests.

A token file is JSON::

    {"version": 1, "devices": {"phone-17": {"sha256": "<hex digest of the token>"}}}

:func:`issue_token` mints a random token for a device, writes its digest (file mode 0600) and
returns the token once; the service never sees or logs a token in the clear after that. Tokens
are long random strings (256 bits), so an unsalted digest is enough: nothing to brute-force.

A store read from a file re-reads it when the file changes (checked at most once per
``reload_interval_s``, on the next request), so minting or revoking a token needs no restart. A file
that cannot be read keeps the previous tokens and is logged; :func:`issue_token` replaces the file
atomically, so a reader never sees half of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import time
from pathlib import Path

from paramcast.cloud.errors import ApiError

__all__ = ["TokenStore", "issue_token"]

log = logging.getLogger("paramcast.cloud")
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_PREFIX = "pct_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _check_device_id(device_id: str) -> None:
    if not DEVICE_ID.match(device_id):
        raise ValueError(
            f"device id {device_id!r} must be 1-128 characters of letters, digits, '_', '.', ':' or '-' "
            "and start with a letter or digit"
        )


class TokenStore:
    """Maps token digests to device ids; :meth:`authenticate` turns a header into a device id."""

    def __init__(self, digests: dict[str, str] | None = None):
        self._by_digest: dict[str, str] = {}
        for device_id, digest in (digests or {}).items():
            self.add_digest(device_id, digest)
        self._path: Path | None = None
        self._stamp: tuple | None = None
        self._checked = 0.0
        self.reload_interval_s = 1.0

    @staticmethod
    def _stat(path: Path) -> tuple | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    @classmethod
    def from_file(cls, path: str | Path, *, reload_interval_s: float = 1.0) -> TokenStore:
        path = Path(path)
        stamp = cls._stat(path)
        try:
            data = json.loads(path.read_text())
            devices = data["devices"]
            store = cls({d: v["sha256"] for d, v in devices.items()})
        except FileNotFoundError:
            raise ValueError(f"token file {path} does not exist; create one with `paramcast serve --issue-token DEVICE`") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"token file {path} is not a paramcast token file ({exc!r})") from None
        store._path, store._stamp, store._checked = path, stamp, time.monotonic()
        store.reload_interval_s = reload_interval_s
        return store

    def _maybe_reload(self) -> None:
        if self._path is None or time.monotonic() - self._checked < self.reload_interval_s:
            return
        self._checked = time.monotonic()
        stamp = self._stat(self._path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            fresh = TokenStore.from_file(self._path)
        except ValueError as exc:
            log.warning("token file changed but could not be read; keeping the %d previous tokens: %s", len(self), exc)
            return
        self._by_digest = fresh._by_digest  # one assignment: a request sees the old or the new set
        log.info("token file %s re-read: %d device tokens", self._path, len(self))

    def add_digest(self, device_id: str, digest: str) -> None:
        _check_device_id(device_id)
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"token digest for {device_id!r} must be 64 lower-case hex digits (sha256)")
        self._by_digest[digest] = device_id

    def add_token(self, device_id: str, token: str) -> None:
        self.add_digest(device_id, _digest(token))

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, authorization: str | None) -> str:
        """Device id for an ``Authorization: Bearer <token>`` header; :class:`ApiError` 401 otherwise."""
        challenge = {"WWW-Authenticate": 'Bearer realm="paramcast"'}
        self._maybe_reload()
        if not authorization:
            raise ApiError(401, "unauthenticated", "missing 'Authorization: Bearer <token>' header", challenge)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthenticated", "the Authorization header must be 'Bearer <token>'", challenge)
        digest = _digest(token)
        # Looking up the digest (not the token) leaks nothing useful through timing.
        device_id = self._by_digest.get(digest)
        if device_id is not None:
            return device_id
        raise ApiError(401, "unauthenticated", "unknown or revoked device token", challenge)


def issue_token(path: str | Path, device_id: str) -> str:
    """Mint a token for ``device_id``, store its digest in ``path`` (replacing an older one); return it."""
    _check_device_id(device_id)
    path = Path(path)
    data = {"version": 1, "devices": {}}
    if path.exists():
        data = json.loads(path.read_text())
        data.setdefault("devices", {})
    token = _PREFIX + secrets.token_urlsafe(32)
    data["devices"][device_id] = {"sha256": _digest(token)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
    return token
