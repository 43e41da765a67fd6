"""Serving Gibbous's HTTP apps with uvicorn (the webhook, the extender, the autoscaler's
probes): a deadline for reading each request (its TLS handshake included), a limit on its
headers, bodies read up to a limit, and HTTPS with the certificate reloaded when its files
change (`gibbous.certs.reload`).

Every connection shares one SSLContext, so loading a new chain into it switches new
handshakes to the new certificate without a restart; established connections keep the old one.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import gc
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Receive, Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gibbous.certs.reload import CertificateReloader

log = logging.getLogger("gibbous.serving")

# A request (its headers and its body) must arrive within this long of its first byte, or
# of the connection opening (its TLS handshake included): the API server sends a 4 KB
# review at once and gives up on a webhook after `timeoutSeconds` (3 s here, 30 s at most),
# and kube-scheduler's extender calls time out at 30 s. A client dribbling bytes, or
# sending none, only ties a connection (and a file descriptor) up.
REQUEST_READ_TIMEOUT_S = 10.0

# The request line and headers of one request, all together (docs/decisions.md, "Hostile
# callers, second pass"): the API server's admission and extender calls carry a dozen
# short headers (well under 2 KiB, a bearer token included); Go's http.Server allows 1 MiB
# and nginx 32 KiB. Beyond this a request is refused with 431 before more is read.
MAX_HEADER_BYTES = 64 * 1024

# After refusing a request, read and drop what the client still sends for this long
# before closing: closing a socket with unread data makes the kernel send a reset, which
# can destroy the refusal before the client reads it.
REFUSAL_LINGER_S = 1.0

_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for reading each request whole, and a
    limit on the size of its headers.

    uvicorn times out idle keep-alive connections but not a request whose headers or body
    arrive a byte at a time (Go's http.Server has ReadTimeout for this); such a connection
    is closed when the deadline passes, and the app, if it was reading the body, sees a
    disconnect. The first deadline counts from the moment the connection was accepted, so
    a TLS handshake spends from it. httptools puts no limit on headers (a 16 MiB header got
    a 200): the bytes of each request's head are counted as they arrive."""

    read_timeout_s = REQUEST_READ_TIMEOUT_S
    max_header_bytes = MAX_HEADER_BYTES
    _deadline: asyncio.TimerHandle | None = None
    _in_headers = True  # the bytes arriving belong to a request line or headers
    _header_bytes = 0
    _refused = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Made when the connection is accepted, before any TLS handshake.
        self._accepted_at = self.loop.time()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        spent = self.loop.time() - self._accepted_at
        self._arm(max(0.0, self.read_timeout_s - spent))

    def data_received(self, data: bytes) -> None:
        # Feed the parser no more head than the limit: what is fed is buffered by httptools
        # until the header ends.
        while data and not self._refused and not self.transport.is_closing():
            if not self._in_headers:
                super().data_received(data)
                return
            room = self.max_header_bytes - self._header_bytes
            head, data = data[:room], data[room:]
            self._header_bytes += len(head)
            if head:
                super().data_received(head)
            if data and self._in_headers and self._header_bytes >= self.max_header_bytes:
                self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._arm(self.read_timeout_s)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_headers = True
        self._header_bytes = 0
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, after_s: float) -> None:
        self._deadline = self.loop.call_later(after_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _read_timed_out(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.info(
                "closing a connection whose request was not read within %ss", self.read_timeout_s
            )
            self.transport.close()

    def _refuse_headers(self) -> None:
        self._refused = True
        log.info("refusing a request whose headers pass %s bytes", self.max_header_bytes)
        message = f"request headers larger than {self.max_header_bytes} bytes".encode()
        self.transport.write(_HEADERS_TOO_LARGE % (len(message), message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(REFUSAL_LINGER_S, self.transport.close)


class TLSAcceptor(asyncio.sslproto.SSLProtocol):
    """TLS in front of a DeadlineProtocol, with the handshake inside the read deadline.

    uvicorn hands its SSLContext to `loop.create_server`, which gives a connection 60 s to
    finish its handshake (asyncio's and uvloop's default; issue #32: 21,000 silent sockets
    used up the file descriptors). uvicorn has no setting for it, so Gibbous's servers give
    uvicorn no context and wrap each connection here; subclasses set the class fields."""

    http_protocol: type[DeadlineProtocol] = DeadlineProtocol
    context: ssl.SSLContext

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        loop = _loop or asyncio.get_event_loop()
        http = self.http_protocol(
            config=config, server_state=server_state, app_state=app_state, _loop=loop
        )
        # No waiter (typeshed says one is required; asyncio.sslproto checks for None): no
        # one awaits the handshake, and a waiter's unread exception would be logged.
        super().__init__(
            loop,
            http,
            self.context,
            None,  # type: ignore[arg-type]
            server_side=True,
            ssl_handshake_timeout=http.read_timeout_s,  # type: ignore[arg-type]  # a float, as documented
        )


def _protocol_class(read_timeout_s: float, context: ssl.SSLContext | None) -> type[Any]:
    protocol = (
        DeadlineProtocol
        if read_timeout_s == DeadlineProtocol.read_timeout_s
        else type("DeadlineProtocol", (DeadlineProtocol,), {"read_timeout_s": read_timeout_s})
    )
    if context is None:
        return protocol
    return type("TLSAcceptor", (TLSAcceptor,), {"http_protocol": protocol, "context": context})


def server_config(
    app: ASGIApp,
    listen: Listen,
    *,
    read_timeout_s: float = REQUEST_READ_TIMEOUT_S,
    tls: ssl.SSLContext | None = None,
    **options: Any,
) -> uvicorn.Config:
    """uvicorn settings every Gibbous server shares: the request read deadline (the TLS
    handshake, with `tls`, included), the header limit, no access log, no lifespan, 30 s
    keep-alive, and uvicorn's lines through the root logger's handlers (no `log_config`:
    uvicorn's own would send them to standard error alone, past `logging.directory` and
    `logging.format`)."""
    return uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        http=_protocol_class(read_timeout_s, tls),
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        log_config=None,
        **options,
    )


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"--listen {text!r}: expected HOST:PORT, e.g. 0.0.0.0:8443")
        return cls(host.strip("[]") or "0.0.0.0", int(port))


def server_tls_context(client_ca: str | None = None) -> ssl.SSLContext:
    """A server's TLS context, its certificate not yet loaded: TLS 1.2 or later; with
    `client_ca`, only clients presenting a certificate that CA signed complete the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class TLSServer:
    """uvicorn serving `app` over HTTPS with certificate reload; with `client_ca`, to
    clients with a certificate from that CA only (mutual TLS)."""

    def __init__(
        self,
        app: ASGIApp,
        listen: Listen,
        cert: str,
        key: str,
        *,
        client_ca: str | None = None,
        reload_interval_s: float = 10.0,
        read_timeout_s: float = REQUEST_READ_TIMEOUT_S,
        registry: CollectorRegistry | None = None,
        log_level: str = "info",
    ) -> None:
        """`registry`: where the certificate's problems and expiry are published."""
        self.context = server_tls_context(client_ca)
        self.reloader = CertificateReloader(self.context, cert, key, registry=registry)
        self.reloader.load()
        self.config = server_config(
            app, listen, read_timeout_s=read_timeout_s, tls=self.context, log_level=log_level
        )
        self.server = uvicorn.Server(self.config)
        self.reload_interval_s = reload_interval_s

    @property
    def started(self) -> bool:
        return self.server.started

    def bound_port(self) -> int:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("server is not listening")

    async def serve(
        self, background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    ) -> None:
        """Serve until stopped; `background` coroutines run beside the server and are cancelled with it."""
        self.config.load()
        # Everything loaded so far lives as long as the process: move it out of the cyclic
        # collector's sight, so the collections the request path triggers stay short.
        gc.freeze()
        tasks = [asyncio.create_task(self.reloader.run(self.reload_interval_s))]
        tasks += [asyncio.create_task(job()) for job in background]
        try:
            await self.server.serve()
        finally:
            for task in tasks:
                task.cancel()

    def run(self, background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()) -> None:
        """`serve` on the event loop uvicorn's `loop` setting picks (uvloop when installed),
        as `uvicorn.run` does: `asyncio.run` would always use the pure-Python loop."""
        with asyncio.Runner(loop_factory=self.config.get_loop_factory()) as runner:
            runner.run(self.serve(background))

    def stop(self) -> None:
        self.server.should_exit = True


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit`: refused on its declared
    Content-Length before anything is read, or as soon as what was sent passes the limit."""
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
