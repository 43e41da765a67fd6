"""Serving the webhook over HTTPS with uvicorn, reloading the certificate when its files change.

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
from starlette.types import ASGIApp

log = logging.getLogger("gibbous.webhook")


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
        self.config = uvicorn.Config(
            app,
            host=listen.host,
            port=listen.port,
            ssl_certfile=cert,
            ssl_keyfile=key,
            log_level=log_level,
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
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
