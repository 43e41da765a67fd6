"""What the cloud emulators share: a JSON-over-HTTP(S) server on loopback, and the
command line that runs an emulator with its node agent for `gibbous dev-cluster`."""

from __future__ import annotations

import argparse
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kubernetes import client, config

log = logging.getLogger("gibbous.emulation")

# (method, path with query, headers with lower-case names, body) ->
# (status, JSON body or None for none, response headers)
Handle = Callable[[str, str, Mapping[str, str], bytes], tuple[int, Any, Mapping[str, str]]]


def serve_json(
    handle: Handle, *, name: str, port: int = 0, context: ssl.SSLContext | None = None
) -> ThreadingHTTPServer:
    """Serve `handle` on 127.0.0.1 (HTTPS with `context`) from a daemon thread. A handler
    that raises is the emulator's own bug: a 500, as a server would answer."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out as two writes: without this, Nagle holds the body
            # until the client's delayed ACK of the headers (40 ms a request on Linux).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, body, extra = handle(self.command, self.path, headers, raw)
            except Exception as error:
                log.exception("%s %s failed", self.command, self.path)
                status, body, extra = 500, {"error": {"code": 500, "message": str(error)}}, {}
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


def emulator_arguments(description: str) -> argparse.Namespace:
    """The command line every emulator takes from `gibbous dev-cluster up`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cluster", default="dev-cluster")
    parser.add_argument("--kubernetes-version", default="1.37.2")
    # Unset: the emulator's realistic durations (docs/clouds/*.md), times --time-scale.
    parser.add_argument("--boot-seconds", type=float, default=None)
    parser.add_argument("--operation-seconds", type=float, default=None)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return args


# Seconds from an instance running to its Node registering (the kubelet's bootstrap and
# join), before the time scale: a guess of its magnitude (docs/clouds/*.md).
BOOT_S = 60.0


def set_durations(emulator: Any, args: argparse.Namespace) -> None:
    """The emulator's time scale from `emulator_arguments`, and --operation-seconds (as
    given, whatever the scale) when set."""
    emulator.time_scale = float(args.time_scale)
    if args.operation_seconds is not None:
        emulator.operation_s = float(args.operation_seconds) / max(args.time_scale, 1e-9)


def boot_seconds(args: argparse.Namespace) -> float:
    """The agent's boot time: --boot-seconds as given, else BOOT_S times --time-scale."""
    return float(args.boot_seconds) if args.boot_seconds is not None else BOOT_S * args.time_scale


def kubernetes_api(kubeconfig: str) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return client.ApiClient(configuration)


def write_ready(path: str | None, state: Mapping[str, Any]) -> None:
    """Say the emulator serves, with what a client needs, whole when the file appears."""
    if not path:
        return
    ready = Path(path)
    ready.with_suffix(".tmp").write_text(json.dumps(dict(state)))
    ready.with_suffix(".tmp").replace(ready)


class Countable(Protocol):
    kind: str
    times: int | None


F = TypeVar("F", bound=Countable)


def take_fault(faults: Iterable[F], kinds: Iterable[str], matches: Callable[[F], bool]) -> F | None:
    """The first injected fault of one of `kinds` that `matches` and has uses left, used
    up once if it was given a number of uses (the emulators' fault tables)."""
    wanted = set(kinds)
    for fault in faults:
        if fault.kind in wanted and (fault.times is None or fault.times > 0) and matches(fault):
            if fault.times is not None:
                fault.times -= 1
            return fault
    return None


class RequestBucket:
    """Request throttling as the clouds document it: a bucket of `size` tokens refilled
    at `refill_per_s` (ARM's and EC2's token buckets), or, with `window_s`, `size`
    requests per synchronized window (Compute Engine's per-minute rate quotas, which
    refill at the start of the next minute). `size` 0: unlimited. `take` answers 0 when
    the request may go, else the seconds until it could (the Retry-After)."""

    def __init__(
        self,
        size: float,
        refill_per_s: float,
        clock: Callable[[], float],
        window_s: float = 0.0,
    ) -> None:
        self.size, self.refill_per_s, self.window_s = size, refill_per_s, window_s
        self.clock = clock
        self.lock = threading.Lock()
        self.tokens, self.at = size, clock()
        self.window = self._window(self.at)
        self.refused = 0

    def _window(self, now: float) -> int:
        return int(now // self.window_s) if self.window_s > 0 else 0

    def take(self) -> float:
        if self.size <= 0:
            return 0.0
        with self.lock:
            now = self.clock()
            if self.window_s > 0:
                if self._window(now) != self.window:
                    self.window, self.tokens = self._window(now), self.size
                wait = (self.window + 1) * self.window_s - now
            else:
                elapsed = max(0.0, now - self.at)
                self.tokens = min(self.size, self.tokens + elapsed * self.refill_per_s)
                wait = (1 - self.tokens) / self.refill_per_s if self.refill_per_s > 0 else 60.0
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            self.refused += 1
            return max(wait, 0.001)
