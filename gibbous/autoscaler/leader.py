"""Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it.

One replica acts; the others wait. The holder renews every `retry_period_s`; a candidate
takes the Lease over only when it has seen the same record unchanged for
`lease_duration_s` (time measured on the candidate's own monotonic clock, so clock skew
between machines does not matter). Writes are replaces guarded by resourceVersion, so
two candidates never both win. A leader that cannot renew within `renew_deadline_s`
stops acting (`on_lost`); the process then exits and is restarted, as client-go advises.

The leader also writes `annotations()` onto the Lease at every renewal; a candidate that
takes the Lease over finds its predecessor's in `inherited` before `on_started` runs
(the autoscaler hands its back-offs on this way).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gibbous.kubeapi import micro_time

log = logging.getLogger("gibbous.autoscaler")


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration_s: float = 15.0,
        renew_deadline_s: float = 10.0,
        retry_period_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        self.monotonic = monotonic
        self.leading = threading.Event()
        self.stopped = threading.Event()
        self.annotations: Callable[[], Mapping[str, str]] = dict
        self.inherited: dict[str, str] = {}
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0

    def _body(
        self, transitions: int, acquired: str, resource_version: str | None
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        annotations = dict(self.annotations())
        if annotations:
            metadata["annotations"] = annotations
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_duration_s),
                "acquireTime": acquired,
                "renewTime": micro_time(),
                "leaseTransitions": transitions,
            },
        }

    def try_acquire_or_renew(self) -> bool:
        now = self.monotonic()
        try:
            lease = self.coordination.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            self.coordination.create_namespaced_lease(
                self.namespace, self._body(0, micro_time(), None)
            )
            return True
        spec = lease.spec
        record = (spec.holder_identity, spec.renew_time, spec.lease_transitions)
        if record != self._observed:
            self._observed, self._observed_at = record, now
        holder = spec.holder_identity or ""
        duration = float(spec.lease_duration_seconds or self.lease_duration_s)
        if holder and holder != self.identity and now - self._observed_at < duration:
            return False  # someone else holds a live lease
        if holder != self.identity:
            self.inherited = dict(lease.metadata.annotations or {})
        transitions = int(spec.lease_transitions or 0) + (0 if holder == self.identity else 1)
        acquired = (
            micro_time(spec.acquire_time)
            if holder == self.identity and spec.acquire_time
            else micro_time()
        )
        try:
            self.coordination.replace_namespaced_lease(
                self.name,
                self.namespace,
                self._body(transitions, acquired, lease.metadata.resource_version),
            )
        except ApiException as error:
            if error.status == 409:
                return False  # another candidate wrote first
            raise
        return True

    def run(self, on_started: Callable[[], None], on_lost: Callable[[], None]) -> None:
        """Block: campaign, call `on_started` once leading, `on_lost` if leadership is lost."""
        while not self.stopped.is_set():
            try:
                won = self.try_acquire_or_renew()
            except Exception as error:
                log.warning("leader election: %s", error)
                won = False
            now = self.monotonic()
            if won:
                self._renewed_at = now
                if not self.leading.is_set():
                    log.info(
                        "leader election: %s leads %s/%s", self.identity, self.namespace, self.name
                    )
                    on_started()  # before `leading`: nothing acts before it has run
                    self.leading.set()
            elif self.leading.is_set() and now - self._renewed_at > self.renew_deadline_s:
                log.error("leader election: lost the lease %s/%s", self.namespace, self.name)
                self.leading.clear()
                on_lost()
                return
            self.stopped.wait(self.retry_period_s)

    def release(self) -> None:
        """Hand the lease over at once on a clean shutdown (an empty holder is free)."""
        self.stopped.set()
        if not self.leading.is_set():
            return
        try:
            lease = self.coordination.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                body = self._body(
                    int(lease.spec.lease_transitions or 0),
                    micro_time(),
                    lease.metadata.resource_version,
                )
                body["spec"]["holderIdentity"] = ""
                body["spec"]["leaseDurationSeconds"] = 1
                self.coordination.replace_namespaced_lease(self.name, self.namespace, body)
        except Exception as error:
            log.warning("leader election: release failed: %s", error)
        self.leading.clear()
