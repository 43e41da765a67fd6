"""Every Gibbous server closes a connection whose request (headers or body) does not arrive
within the read deadline, while ordinary keep-alive requests go on working (issue #19); it
refuses headers past MAX_HEADER_BYTES with 431, and a TLS handshake spends from the
deadline too (issue #32)."""

from __future__ import annotations

import contextlib
import datetime
import gc
import json
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from gibbous.certs.authority import generate_ca, generate_serving, write_bundle
from gibbous.serving import MAX_HEADER_BYTES, Listen, TLSServer, server_config
from gibbous.webhook.app import create_app
from tests.factories import config as make_config

DEADLINE_S = 0.5


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = uvicorn.Server(
        server_config(
            create_app(make_config()),
            Listen("127.0.0.1", 0),
            read_timeout_s=DEADLINE_S,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    yield int(server.servers[0].sockets[0].getsockname()[1])
    server.should_exit = True
    thread.join(timeout=10)


def closed_by_server(connection: socket.socket, wait_s: float = 10.0) -> bool:
    """True when the server closes the connection (EOF or reset) within `wait_s`."""
    connection.settimeout(wait_s)
    try:
        while True:
            data = connection.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_slow_headers_are_cut_off(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert closed_by_server(connection)


def test_a_silent_connection_is_cut_off(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        assert closed_by_server(connection)


def test_a_slow_body_is_cut_off(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(
            b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        for _ in range(3):  # a byte now and then, never the whole body
            time.sleep(DEADLINE_S / 2)
            try:
                connection.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
        assert closed_by_server(connection)


def test_keep_alive_requests_are_not_cut_off_between_requests(port: int) -> None:
    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode()
    request = (
        b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(10)
        for _ in range(2):
            connection.sendall(request)
            reply = connection.recv(65536)
            assert reply.startswith(b"HTTP/1.1 400"), reply[:100]  # answered, not cut off
            time.sleep(DEADLINE_S * 2)  # idle between requests: the keep-alive timeout's job


def _send_quietly(connection: socket.socket, data: bytes) -> None:
    """Send what the server may refuse halfway (it then closes: a reset, a broken pipe)."""
    with contextlib.suppress(OSError):
        connection.sendall(data)


def _reply_of(connection: socket.socket, wait_s: float = 10.0) -> bytes:
    connection.settimeout(wait_s)
    received = b""
    try:
        while not received.endswith(b"bytes") and len(received) < 65536:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    except (OSError, TimeoutError):
        pass
    return received


def _request_with_header(size: int) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"


def test_headers_within_the_limit_are_served(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(_request_with_header(MAX_HEADER_BYTES // 2))
        connection.settimeout(10)
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")


def test_a_header_past_the_limit_gets_431_promptly(port: int) -> None:
    # One 16 MiB header got a 200 before: httptools sets no limit.
    with socket.create_connection(("127.0.0.1", port)) as connection:
        started = time.monotonic()
        sender = threading.Thread(
            target=_send_quietly, args=(connection, _request_with_header(2**20))
        )
        sender.start()
        reply = _reply_of(connection)
        sender.join(timeout=10)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
    assert time.monotonic() - started < 5


def test_large_headers_do_not_grow_memory(port: int) -> None:
    # Eight parallel 64 MiB headers took the webhook to 539 MB before: httptools buffers
    # a header until it ends. Four of 8 MiB here; what the server holds stays small.
    request = _request_with_header(8 * 2**20)
    tracemalloc.start()
    try:
        gc.collect()
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        senders = [threading.Thread(target=_send_quietly, args=(c, request)) for c in connections]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=30)
        for connection in connections:
            connection.close()
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """(port, CA file) of the webhook over TLS, with a read deadline of 1 s."""
    now = datetime.datetime.now(datetime.UTC)
    ca = generate_ca(common_name="test CA", days=30, now=now)
    serving = generate_serving(
        ca, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=10, now=now
    )
    paths = write_bundle(Path(tmp_path_factory.mktemp("tls")), ca, serving)
    server = TLSServer(
        create_app(make_config()),
        Listen("127.0.0.1", 0),
        str(paths["tls.crt"]),
        str(paths["tls.key"]),
        read_timeout_s=DEADLINE_S * 2,
        log_level="warning",
    )
    thread = threading.Thread(target=server.run, daemon=True)  # uvicorn's loop: uvloop
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    yield server.bound_port(), str(paths["ca.crt"])
    server.stop()
    thread.join(timeout=10)


def test_a_connection_that_never_starts_tls_is_closed_within_the_deadline(
    tls_server: tuple[int, str],
) -> None:
    tls_port, _ = tls_server
    # asyncio and uvloop give a handshake 60 s by default: 21,000 silent sockets used up
    # the file descriptors. Now the handshake spends from the read deadline (1 s here).
    with socket.create_connection(("127.0.0.1", tls_port)) as connection:
        started = time.monotonic()
        assert closed_by_server(connection, wait_s=15)
        assert time.monotonic() - started < DEADLINE_S * 2 + 5


def test_https_requests_are_answered(tls_server: tuple[int, str]) -> None:
    tls_port, ca_file = tls_server
    context = ssl.create_default_context(cafile=ca_file)
    with (
        socket.create_connection(("127.0.0.1", tls_port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as connection,
    ):
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        connection.settimeout(10)
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
