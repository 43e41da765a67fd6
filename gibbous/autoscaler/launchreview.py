"""What the provider and the Nodes say of the launches in flight: the provider's
instances listed (often while launches fly, rarely otherwise) and each unregistered
accepted launch polled; each launch tied to its Node, a Node registered without the
labels or taints its launch asked for repaired; the catalog (its prices) read again."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gibbous.autoscaler.cloud.base import Instance, InstanceNotFoundError, ThrottledError
from gibbous.autoscaler.loopstate import LoopState
from gibbous.core import keys
from gibbous.core.choice.selection import build_offers
from gibbous.core.lifecycle.launches import (
    LaunchState,
    NodeState,
    nodes_by_instance,
    registration_repair,
    repaired_node,
)
from gibbous.core.podmodel.pods import metadata
from gibbous.core.settings.kubeletlabels import after_registration

log = logging.getLogger("gibbous.autoscaler")

# How often the provider is listed: often while launches are in flight (their instances
# matter), rarely otherwise (orphans and restarts only).
LIST_PERIOD_BUSY_S = 2.0
LIST_PERIOD_IDLE_S = 30.0
# How often the provider's catalog (its prices) is read again.
OFFERS_REFRESH_S = 300.0


class LaunchReview(LoopState):
    def _refresh_offers(self, now: float) -> None:
        """Prices move (live spot prices): ask the provider again now and then, and plan
        with the new offers when they changed. A change in the cluster's DaemonSets
        resizes the offers at once."""
        self._follow_daemonsets()
        if now - self.offers_at < OFFERS_REFRESH_S:
            return
        self.offers_at = now
        try:
            types = self.provider.instance_types()
        except Exception as error:
            log.warning("refreshing the %s catalog failed: %s", self.provider.name, error)
            return
        if types != self.types:
            self.types = types
            self._rebuild_offers()
            log.info("offers rebuilt from new %s prices", self.provider.name)

    def _follow_daemonsets(self) -> None:
        """The cluster hands over the same described DaemonSets until one changes; only
        then are the offers sized again (once per change, not per step)."""
        read = getattr(self.cluster, "daemonset_pods", None)
        described = read() if read is not None else None
        if described is None or described is self.daemonset_pods:
            return
        changed = described != self.daemonset_pods
        self.daemonset_pods = described
        if changed:
            self._rebuild_offers()
            log.info("offers sized for %d DaemonSets", len(described))

    def _rebuild_offers(self) -> None:
        self.offers = build_offers(self.types, self.config, self.daemonset_pods)
        self.offers_by_key = {(o.name, str(o.category)): o for o in self.offers}

    def _match_registrations(self, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Tie each launch in flight to its Node by `spec.providerID` (a cloud's node name
        need not be what the provider guessed), and give a node that registered without
        the labels or taints its launch asked for what it lacks, once, with an event.
        Returns the nodes as this step must see them: a repaired node with its repair
        (the cache shows it only after the watch brings the change)."""
        if not self.launches:
            return nodes
        by_instance = nodes_by_instance(nodes)
        by_name = {str(metadata(n).get("name") or ""): n for n in nodes}
        for token, recorded in list(self.launches.items()):
            name = by_instance.get(recorded.instance_id) if recorded.instance_id else None
            if name is None:
                continue
            launch = recorded if name == recorded.node_name else replace(recorded, node_name=name)
            self.launches[token] = launch
            if name in self.repaired:
                continue
            repair = registration_repair(launch, by_name[name], self.provider.cloud_label_keys)
            self.repaired.add(name)
            if repair is None:
                continue
            # Per-node labels a pool-based cloud cannot put on at registration, and labels
            # NodeRestriction keeps the kubelet from setting, are expected.
            late = self.provider.late_label_keys | after_registration(repair.labels)
            expected = not repair.taints and set(repair.labels) <= late
            message = (
                f"registered without {repair.describe()} that its launch asked for (the "
                "node's user data or bootstrap did not set them, or NodeRestriction kept the "
                "kubelet from it); Gibbous added them"
            )
            if expected:
                log.info("node %s registered; adding its %s", name, repair.describe())
            else:
                log.warning("node %s %s", name, message)
            try:
                self.cluster.repair_node(name, repair.labels, repair.taints)
            except Exception as error:
                self.repaired.discard(name)
                log.warning("repairing node %s failed (%s); will retry", name, error)
                continue
            by_name[name] = repaired_node(by_name[name], repair)
            if not expected:
                self._event(
                    by_name[name], keys.EVENT_NODE_REPAIRED, message, warning=True, kind="Node"
                )
        return [by_name.get(str(metadata(n).get("name") or ""), n) for n in nodes]

    def _poll_in_flight(
        self, now: float, registered: Mapping[str, NodeState]
    ) -> dict[str, Instance]:
        """Ask the provider about each accepted launch whose Node has not registered: a
        cloud that accepts a launch and fails it later (EC2 spot, every GKE, AKS and OKE
        operation) says so here, within one busy period, not at scaleUpTimeout."""
        if (
            not self.launches
            or now - self.last_poll_at < LIST_PERIOD_BUSY_S
            or now < self.reads_paused_until
        ):
            return {}
        self.last_poll_at = now
        out: dict[str, Instance] = {}
        for launch in self.launches.values():
            if (
                launch.state is not LaunchState.ACCEPTED
                or not launch.instance_id
                or launch.node_name in registered
            ):
                continue
            try:
                out[launch.instance_id] = self.provider.get(launch.instance_id)
            except InstanceNotFoundError:
                continue  # the listing's settle rule decides about vanished instances
            except ThrottledError as error:
                # The rest wait with this one: polling on would be throttled too. An
                # unpolled launch is only undecided, never failed.
                self.reads_paused_until = now + error.retry_after_s
                log.info("polling launches in flight: %s", error)
                break
            except Exception as error:
                log.warning("polling launch %s failed: %s", launch.token, error)
        return out

    def _list_instances(self, now: float) -> list[Instance] | None:
        period = LIST_PERIOD_BUSY_S if self.launches else LIST_PERIOD_IDLE_S
        if now - self.last_list_at < period or now < self.reads_paused_until:
            return None
        try:
            instances = self.provider.list(self.config.cluster_id)
        except ThrottledError as error:
            # Listed again when the cloud says; meanwhile no instance is judged (no
            # orphan, no vanished launch) on a listing not made.
            self.reads_paused_until = now + error.retry_after_s
            log.info("listing %s instances: %s", self.provider.name, error)
            return None
        except Exception as error:
            log.warning("listing %s instances failed: %s", self.provider.name, error)
            return None
        self.last_list_at = now
        self.instances = instances
        return instances
