"""Test-wide guards: offline, few threads, and no traffic beyond loopback."""

from __future__ import annotations

import ipaddress
import os
import socket

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

_real_connect = socket.socket.connect


def _loopback_only(self, address):
    """Refuse any connection that is not to loopback or a Unix socket (tests make no network access)."""
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost":
                raise RuntimeError(f"test tried to reach {host!r}: only loopback is allowed") from None
        else:
            if not ip.is_loopback:
                raise RuntimeError(f"test tried to reach {host!r}: only loopback is allowed")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, request):
    if request.node.get_closest_marker("network") is None:
        monkeypatch.setattr(socket.socket, "connect", _loopback_only)
    yield
