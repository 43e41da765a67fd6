"""`gibbous autoscaler` as a process: caches, leader election, the loop thread, the kwok
kubelet thread, and a small HTTP server for /healthz, /readyz and /metrics.

Healthy means the loop thread is alive and has finished an iteration recently (or is
waiting for leadership); ready means the caches are synced and, when leading, the loop
has run once. Followers are ready too (they serve metrics and take over on failure).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gibbous.autoscaler.leader import LeaderElector
from gibbous.autoscaler.lifecycle import NodeLifecycle
from gibbous.autoscaler.loop import Autoscaler
from gibbous.autoscaler.statuswriter import StatusWriter
from gibbous.core import keys
from gibbous.core.lifecycle.statusreport import DrainSnapshot
from gibbous.core.planning.backoff import Backoffs

log = logging.getLogger("gibbous.autoscaler")


class Caches(Protocol):
    """The part of `KubeCluster` the service drives."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def ready(self) -> bool: ...


@dataclass
class AutoscalerService:
    autoscaler: Autoscaler
    cluster: Caches
    period_s: float = 1.0
    elector: LeaderElector | None = None
    lifecycle: NodeLifecycle | None = None  # scale-down, TTL, hot nodes, interruptions
    kubelet: Callable[[], None] | None = None  # the kwok provider's heartbeat
    kubelet_period_s: float = 2.0
    status: StatusWriter | None = None  # the status object `gibbous status` reads
    stall_after_s: float = 120.0
    on_lost_leadership: Callable[[], None] = lambda: None
    stopped: threading.Event = field(default_factory=threading.Event)
    last_step_at: float = 0.0
    steps: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.leading.is_set()

    def start(self) -> None:
        self.cluster.start()
        self._spawn(self._loop, "autoscaler-loop")
        if self.status is not None:
            self.status.start()
        if self.kubelet is not None:
            self._spawn(self._kubelet_loop, "kwok-kubelet")
        if self.elector is not None:
            elector = self.elector
            elector.annotations = self._handover
            self._spawn(
                lambda: elector.run(on_started=self._inherit, on_lost=self._lost),
                "leader-election",
            )

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _handover(self) -> dict[str, str]:
        """What the next leader should know: the back-offs still running."""
        records = self.autoscaler.backoffs.to_records(self.autoscaler.clock())
        return {keys.BACKOFFS: json.dumps(records, separators=(",", ":"))}

    def _inherit(self) -> None:
        """Take over the previous leader's back-offs: without them a failover would retry,
        at once, the types that just stocked out or timed out."""
        assert self.elector is not None
        text = self.elector.inherited.get(keys.BACKOFFS)
        if not text:
            return
        try:
            inherited = Backoffs.from_records(json.loads(text))
        except ValueError as error:
            log.warning("ignoring the previous leader's back-offs: %s", error)
            return
        self.autoscaler.backoffs = self.autoscaler.backoffs.merged(inherited)
        active = inherited.active(self.autoscaler.clock())
        if active:
            log.info(
                "took over %d back-off(s) from the previous leader: %s",
                len(active),
                ", ".join(f"{e.instance_type}/{e.category}" for e in active),
            )

    def _lost(self) -> None:
        self.stopped.set()
        self.on_lost_leadership()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            started = time.monotonic()
            if self.leading and self.cluster.ready():
                try:
                    timed = self.autoscaler.metrics.step_seconds
                    with timed.labels("provisioning").time():
                        self.autoscaler.step()
                    if self.lifecycle is not None:
                        with timed.labels("lifecycle").time():
                            self.lifecycle.step()
                    self.steps += 1
                except Exception:
                    log.exception("autoscaler iteration failed; retrying")
                    self.autoscaler.metrics.loop_errors.inc()
                else:
                    self._publish_status()
            self.last_step_at = time.monotonic()
            self.stopped.wait(max(0.0, self.period_s - (time.monotonic() - started)))

    def _publish_status(self) -> None:
        """Outside the timed step: a snapshot every few seconds, written by the writer's
        thread."""
        status = self.status
        if status is None or not status.due(self.autoscaler.clock()):
            return
        drains = (
            [
                DrainSnapshot(name, str(state.drain.reason), state.drain.why, state.started_at)
                for name, state in list(self.lifecycle.draining.items())
            ]
            if self.lifecycle is not None
            else []
        )
        status.offer(self.autoscaler.status_snapshot(drains), self.autoscaler.last_nodes)

    def _kubelet_loop(self) -> None:
        assert self.kubelet is not None
        while not self.stopped.is_set():
            if self.leading:
                try:
                    self.kubelet()
                except Exception as error:
                    log.warning("kwok heartbeat failed: %s", error)
            self.stopped.wait(self.kubelet_period_s)

    def stop(self) -> None:
        self.stopped.set()
        if self.status is not None:
            self.status.stop()
        if self.elector is not None:
            self.elector.release()
        self.cluster.stop()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(timeout=10)
        self.autoscaler.provider.close()

    # --- probes ------------------------------------------------------------------------------

    def healthy(self) -> bool:
        return not self.stopped.is_set() and time.monotonic() - self.last_step_at < max(
            self.stall_after_s, 3 * self.period_s
        )

    def ready(self) -> bool:
        return self.cluster.ready() and (not self.leading or self.steps > 0)

    def app(self) -> Starlette:
        async def healthz(request: Request) -> Response:
            ok = self.healthy()
            return PlainTextResponse("ok" if ok else "loop stalled", status_code=200 if ok else 503)

        async def readyz(request: Request) -> Response:
            ok = self.ready()
            role = "leader" if self.leading else "follower"
            return PlainTextResponse(
                f"ready ({role})" if ok else "caches not synced", status_code=200 if ok else 503
            )

        async def metrics(request: Request) -> Response:
            return Response(
                generate_latest(self.autoscaler.metrics.registry), media_type=CONTENT_TYPE_LATEST
            )

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/readyz", readyz),
                Route("/metrics", metrics),
            ]
        )
