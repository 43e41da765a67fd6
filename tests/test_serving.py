"""Every Gibbous server closes a connection whose request (headers or body) does not arrive
within the read deadline, while ordinary keep-alive requests go on working (issue #19)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from gibbous.serving import Listen, server_config
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
