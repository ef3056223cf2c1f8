"""https reader: SNI and the certificate are checked against the name while connecting to
the vetted IP, and the deadline cuts a socket wrapped in TLS."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.worker.fetch.routes import IMAGE, drip_header_lines, lim, public_name
from tests.worker.reading import code_of
from worker.errors import ErrorCode
from worker.netguard import DEADLINE_FACTOR
from worker.sources import read_bytes


def test_https_pins_the_ip_but_verifies_the_name(
    tls_server: dict[str, Any], net: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", tls_server["ca"])
    public_name(net)
    tls_server["sni"].clear()
    url = f"https://images.example:{tls_server['port']}/img"
    assert read_bytes(url, lim(private=False)) == IMAGE
    assert tls_server["sni"] == ["images.example"]


def test_https_refuses_a_certificate_for_another_name(
    tls_server: dict[str, Any], net: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", tls_server["ca"])
    public_name(net, "other.example")
    url = f"https://other.example:{tls_server['port']}/img"
    assert code_of(url, lim(private=False)) == ErrorCode.FETCH_FAILED


def test_https_refuses_an_untrusted_certificate(
    tls_server: dict[str, Any], net: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-ca.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    public_name(net)
    url = f"https://images.example:{tls_server['port']}/img"
    assert code_of(url, lim(private=False)) == ErrorCode.FETCH_FAILED


def test_https_header_drip_is_cut_at_the_deadline(
    tls_files: tuple[Path, Path, Path],
    raw_server: Callable[..., int],
    net: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cut reaches a socket wrapped in TLS after it was registered."""
    ca_pem, cert_pem, key_pem = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_pem, key_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    public_name(net)
    ref = f"https://images.example:{raw_server(drip_header_lines, context)}/a.jpg"
    started = time.monotonic()
    assert code_of(ref, lim(private=False, timeout=1.0)) == ErrorCode.FETCH_TIMEOUT
    assert DEADLINE_FACTOR - 0.05 <= time.monotonic() - started < DEADLINE_FACTOR + 1.0
