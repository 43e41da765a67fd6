"""Prometheus metrics of the autoscaler, in a registry of its own (one per autoscaler)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class AutoscalerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.pending_pods = Gauge(
            "gibbous_autoscaler_pending_pods",
            "Managed pods waiting for capacity, by intake decision",
            ["intake"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "gibbous_autoscaler_decisions",
            "Scale-up decisions made (one per batch)",
            registry=self.registry,
        )
        self.launches = Counter(
            "gibbous_autoscaler_launches",
            "Instances the cloud accepted, by type and price category",
            ["instance_type", "category"],
            registry=self.registry,
        )
        self.failures = Counter(
            "gibbous_autoscaler_launch_failures",
            "Failed or abandoned launches, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.backoffs = Gauge(
            "gibbous_autoscaler_backoffs_active",
            "(instance type, category[, zone]) pairs in back-off",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "gibbous_autoscaler_launches_in_flight",
            "Launches accepted whose Node is not Ready yet",
            registry=self.registry,
        )
        self.nodes = Gauge(
            "gibbous_autoscaler_nodes",
            "Nodes Gibbous created (including launches in flight)",
            registry=self.registry,
        )
        self.cost = Gauge(
            "gibbous_autoscaler_estimated_cost_per_hour",
            "Estimated $/hr of the nodes Gibbous created",
            registry=self.registry,
        )
        self.node_cost = Gauge(
            "gibbous_autoscaler_node_cost_per_hour",
            "$/hr of the nodes Gibbous created (registered, launches in flight aside), by "
            "capacity type and instance type",
            ["capacity_type", "instance_type"],
            registry=self.registry,
        )
        self.node_cost_on_demand = Gauge(
            "gibbous_autoscaler_node_cost_on_demand_equivalent_per_hour",
            "What the nodes Gibbous created would cost at on-demand prices (the spot savings "
            "are the difference with gibbous_autoscaler_node_cost_per_hour)",
            registry=self.registry,
        )
        self.pending_by_reason = Gauge(
            "gibbous_autoscaler_pods_pending_by_reason",
            "Managed pods waiting for capacity, by why they wait: launch-in-flight, "
            "existing-node (placed on a node, waiting for the scheduler), unsatisfiable, "
            "awaiting-decision (in the batching window or paused), set-aside (unreadable), "
            "scale-up-delay, estimate-only",
            ["reason"],
            registry=self.registry,
        )
        self.time_to_ready = Histogram(
            "gibbous_autoscaler_pod_creation_to_node_ready_seconds",
            "From a pod's creation to the Ready of the node launched for it",
            buckets=(15, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1800),
            registry=self.registry,
        )
        self.terminations = Counter(
            "gibbous_autoscaler_terminations",
            "Instances terminated by the launch bookkeeping, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.events = Counter(
            "gibbous_autoscaler_events",
            "Pod events written, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.unreadable = Counter(
            "gibbous_autoscaler_unreadable_objects",
            "Object versions set aside because Gibbous could not read them, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.stuck_pods = Gauge(
            "gibbous_autoscaler_pods_waiting_on_stopped_scheduler",
            "Managed pods sent to the Gibbous scheduler while it is not running",
            registry=self.registry,
        )
        self.node_delete_failures = Counter(
            "gibbous_autoscaler_node_delete_failures",
            "Node objects Gibbous failed to delete after terminating their instance "
            "(retried next step)",
            registry=self.registry,
        )
        self.releases = Counter(
            "gibbous_autoscaler_gate_releases",
            "Provisioning-gate releases, by outcome: released (pinned to the node made for "
            "the pod), pinned-elsewhere (the pod's own hostname selector kept), refused",
            ["outcome"],
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "gibbous_autoscaler_step_duration_seconds",
            "Time one loop iteration took, by part (provisioning, lifecycle)",
            ["part"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.hot_node_metrics_readable = Gauge(
            "gibbous_autoscaler_hot_node_metrics_readable",
            "1 while manageHighUtilization.enabled can read metrics.k8s.io, 0 while it cannot "
            "(hot-node mitigation then does nothing)",
            registry=self.registry,
        )
        self.consolidations = Counter(
            "gibbous_autoscaler_consolidations",
            "Replacements of nodes by cheaper capacity, by outcome: started (launched), "
            "done (the retired nodes are gone), abandoned (a launch failed or timed out; "
            "nothing drained)",
            ["outcome"],
            registry=self.registry,
        )
        self.consolidation_savings = Counter(
            "gibbous_autoscaler_consolidation_savings_per_hour",
            "$/hr saved by the replacements started (the retired nodes' price less their "
            "replacement's), summed",
            registry=self.registry,
        )
        self.loop_errors = Counter(
            "gibbous_autoscaler_loop_errors",
            "Loop iterations that failed and were retried",
            registry=self.registry,
        )
