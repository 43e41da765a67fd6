"""The extender over TLS with client certificates required: kube-scheduler's extender
`tlsConfig` (certFile, keyFile, caFile) presents a client certificate; callers without one
from the configured CA are not answered (issue #32)."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gibbous.certs.authority import (
    KeyPair,
    generate_ca,
    generate_client,
    generate_serving,
    write_bundle,
    write_private,
)
from gibbous.extender.app import create_app
from gibbous.extender.state import StaticView
from gibbous.serving import Listen, TLSServer
from tests.factories import config as make_config

NOW = datetime.datetime.now(datetime.UTC)


@dataclass
class Extender:
    port: int
    ca_file: Path
    client_ca: KeyPair
    tmp: Path


def _client_files(tmp: Path, name: str, signer: KeyPair) -> tuple[Path, Path]:
    pair = generate_client(signer, common_name=name, days=1, now=NOW)
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert.write_bytes(pair.cert_pem)
    write_private(key, pair.key_pem)
    return cert, key


@pytest.fixture(scope="module")
def extender(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Extender]:
    tmp = Path(tmp_path_factory.mktemp("mtls"))
    server_ca = generate_ca(common_name="serving CA", days=1, now=NOW)
    paths = write_bundle(
        tmp,
        server_ca,
        generate_serving(
            server_ca, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=1, now=NOW
        ),
    )
    client_ca = generate_ca(common_name="scheduler client CA", days=1, now=NOW)
    (tmp / "client-ca.crt").write_bytes(client_ca.cert_pem)
    server = TLSServer(
        create_app(make_config(), StaticView()),
        Listen("127.0.0.1", 0),
        str(paths["tls.crt"]),
        str(paths["tls.key"]),
        client_ca=str(tmp / "client-ca.crt"),
        log_level="critical",
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    yield Extender(server.bound_port(), paths["ca.crt"], client_ca, tmp)
    server.stop()
    thread.join(timeout=10)


def _get_healthz(extender: Extender, client: tuple[Path, Path] | None) -> bytes:
    """What the server answers to GET /healthz; b"" when it refuses the connection."""
    context = ssl.create_default_context(cafile=str(extender.ca_file))
    if client is not None:
        context.load_cert_chain(*map(str, client))
    try:
        with (
            socket.create_connection(("127.0.0.1", extender.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as connection,
        ):
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            return connection.recv(65536)
    except (ssl.SSLError, ConnectionError):
        return b""


def test_a_client_with_a_certificate_from_the_ca_is_answered(extender: Extender) -> None:
    files = _client_files(extender.tmp, "kube-scheduler", extender.client_ca)
    assert _get_healthz(extender, files).startswith(b"HTTP/1.1 200")


def test_a_client_without_a_certificate_is_not_answered(extender: Extender) -> None:
    assert _get_healthz(extender, None) == b""


def test_a_client_with_a_certificate_from_another_ca_is_not_answered(extender: Extender) -> None:
    stranger = generate_ca(common_name="someone else", days=1, now=NOW)
    files = _client_files(extender.tmp, "stranger", stranger)
    assert _get_healthz(extender, files) == b""
