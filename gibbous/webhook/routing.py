"""Which scheduler new managed pods are routed to: the Gibbous scheduler while its
leader-election Lease is renewed (`gibbous.core.lifecycle.routing`), none (so the default scheduler
takes them, and the autoscaler still provisions for them) while it is not. Checked every few
seconds from the API server; each change is logged and shows in a metric.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from gibbous.core.lifecycle.routing import scheduler_liveness
from gibbous.kubeapi import read_lease

log = logging.getLogger("gibbous.webhook")


class SchedulerLease:
    def __init__(
        self,
        api: Any,
        namespace: str,
        name: str,
        *,
        clock: Callable[[], float] = time.time,
        period_s: float = 5.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.api = api
        self.namespace, self.name = namespace, name
        self.clock = clock
        self.period_s = period_s
        self.on_change = on_change
        self.routing = True  # until the first look: what Gibbous did before it watched
        self.stopped = threading.Event()

    def alive(self) -> bool:
        return self.routing

    def check(self) -> None:
        try:
            lease = read_lease(self.api, self.namespace, self.name)
        except client.ApiException as error:
            # Cannot tell (RBAC, API down): keep routing as it is.
            log.warning("cannot read Lease %s/%s: %s", self.namespace, self.name, error.reason)
            return
        liveness = scheduler_liveness(lease, self.clock())
        if liveness.alive != self.routing:
            self.routing = liveness.alive
            log.warning(
                "scheduler Lease %s/%s: %s; new managed pods %s",
                self.namespace,
                self.name,
                liveness.why,
                "go to the Gibbous scheduler again"
                if liveness.alive
                else "keep the default scheduler (schedulerName not set)",
            )
            if self.on_change is not None:
                self.on_change(liveness.alive)

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.check()
            except Exception:
                log.exception("checking the scheduler Lease failed")
            self.stopped.wait(self.period_s)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="scheduler-lease", daemon=True)
        thread.start()
        return thread
