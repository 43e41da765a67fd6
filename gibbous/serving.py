"""Serving Gibbous's HTTP apps with uvicorn (the webhook, the extender, the autoscaler's
probes): a deadline for reading each request, bodies read up to a limit, and HTTPS with the
certificate reloaded when its files change.

uvicorn builds one SSLContext at start and hands it to every new connection, so
loading a new chain into that same context switches new handshakes to the new
certificate without a restart; established connections keep the old one.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("gibbous.serving")

# A request (its headers and its body) must arrive within this long of its first byte, or
# of the connection opening: the API server sends a 4 KB review at once and gives up on a
# webhook after `timeoutSeconds` (3 s here, 30 s at most), and kube-scheduler's extender
# calls time out at 30 s. A client dribbling bytes only ties a connection up.
REQUEST_READ_TIMEOUT_S = 10.0


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for reading each request whole.

    uvicorn times out idle keep-alive connections but not a request whose headers or body
    arrive a byte at a time (Go's http.Server has ReadTimeout for this); such a connection
    is closed when the deadline passes, and the app, if it was reading the body, sees a
    disconnect."""

    read_timeout_s = REQUEST_READ_TIMEOUT_S
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

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


def server_config(
    app: ASGIApp,
    listen: Listen,
    *,
    read_timeout_s: float = REQUEST_READ_TIMEOUT_S,
    **options: Any,
) -> uvicorn.Config:
    """uvicorn settings every Gibbous server shares: the request read deadline, no access
    log, no lifespan, 30 s keep-alive."""
    protocol = (
        DeadlineProtocol
        if read_timeout_s == DeadlineProtocol.read_timeout_s
        else type("DeadlineProtocol", (DeadlineProtocol,), {"read_timeout_s": read_timeout_s})
    )
    return uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        http=protocol,
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
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


class CertificateReloader:
    """Watches the certificate and key files; loads them into `context` when they change."""

    def __init__(self, context: ssl.SSLContext, cert: str, key: str) -> None:
        self.context = context
        self.cert = cert
        self.key = key
        self.stamp = self._stamp()

    def _stamp(self) -> tuple[float, float, int, int]:
        cert, key = Path(self.cert).stat(), Path(self.key).stat()
        return (cert.st_mtime, key.st_mtime, cert.st_size, key.st_size)

    def check(self) -> bool:
        """Reload if the files changed; True when a new chain was loaded."""
        try:
            stamp = self._stamp()
        except OSError as error:
            log.warning("cannot stat TLS files: %s; keeping the current certificate", error)
            return False
        if stamp == self.stamp:
            return False
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as error:
            # A half-written pair (cert updated before key) fails here; try again next tick.
            log.warning(
                "new TLS files do not load yet (%s); keeping the current certificate", error
            )
            return False
        self.stamp = stamp
        log.info("reloaded TLS certificate from %s", self.cert)
        return True

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.check()


class TLSServer:
    """uvicorn serving `app` over HTTPS with certificate reload."""

    def __init__(
        self,
        app: ASGIApp,
        listen: Listen,
        cert: str,
        key: str,
        *,
        reload_interval_s: float = 10.0,
        log_level: str = "info",
    ) -> None:
        self.config = server_config(
            app, listen, ssl_certfile=cert, ssl_keyfile=key, log_level=log_level
        )
        self.server = uvicorn.Server(self.config)
        self.cert = cert
        self.key = key
        self.reload_interval_s = reload_interval_s
        self.reloader: CertificateReloader | None = None

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
        if self.config.ssl is None:
            raise RuntimeError("uvicorn did not build a TLS context")
        self.reloader = CertificateReloader(self.config.ssl, self.cert, self.key)
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
