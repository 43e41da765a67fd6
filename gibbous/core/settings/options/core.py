"""The top-level options: which pods Gibbous manages, where and how it makes nodes for
them, what it may spend, and how it reaches the webhook and scheduler."""

from __future__ import annotations

import re
from typing import Any

from gibbous.core.errors import ConfigError
from gibbous.core.settings.option import Option, Section, ValueType, as_list, unchanged
from gibbous.core.settings.userdata import check_label
from gibbous.core.settings.valuetypes import (
    BOOLEAN,
    BYTES,
    CPU,
    DURATION,
    OPTIONAL_COST,
    OPTIONAL_LIMIT,
    PATTERN,
    PRICE_CATEGORIES,
    STRING_LIST,
    TEXT,
    TRIMMED_TEXT,
    VERBATIM_TEXT,
    choice,
    number,
    parse_string_list,
    whole_number,
)

CLOUDS = ("aws", "gcp", "azure", "oci")
DEFAULT_REGIONS = {
    "aws": "us-west-2",
    "gcp": "us-central1",
    "azure": "eastus",
    "oci": "us-ashburn-1",
}
ARCHITECTURES = ("amd64", "arm64")

# Not the default (Luna's unset `pendingPodReasonRegexp` lets every pending pod count, P08):
# the value docs/configuration.md recommends beside batch schedulers. It matches
# kube-scheduler's "0/N nodes are available", "no nodes available to schedule pods" (its
# message when the cluster has no node at all) and "Insufficient <resource>" (capitalised,
# as kube-scheduler writes it), and KAI's resource-shortage messages; not queue/quota
# refusals (KAI over-quota and OverLimit, Volcano "queue resource quota insufficient:
# insufficient cpu"). See docs/decisions.md.
RESOURCE_SHORTAGE_REGEXP = (
    r"^0/[0-9]+ nodes are available|^no nodes available to schedule pods|"
    r"[Nn]o (?:node|nodes)\b.*\b(?:resources|enough)|"
    r"Insufficient (?:cpu|memory|nvidia\.com/gpu|ephemeral-storage|pods)"
)


def _labels(value: object, key: str) -> tuple[tuple[str, str], ...]:
    # Luna's `labels` is "key=value" or a comma-separated list of them, any of which
    # makes a pod managed (docs.elotl.co/luna/v0.4/configuration: "pods with any of the
    # labels will be considered by Luna").
    items = parse_string_list(value, key) if value is not None else ()
    out: list[tuple[str, str]] = []
    for item in items:
        name, sep, label_value = item.partition("=")
        name, label_value = name.strip(), label_value.strip()
        try:
            if not sep or not label_value:
                raise ConfigError("no value")
            check_label(name, label_value)
        except ConfigError:
            raise ConfigError(
                f"{key}: invalid label {item!r} in {value!r} (accepted: key=value or "
                "key1=value1,key2=value2 with Kubernetes label keys and non-empty values, "
                "e.g. elotl-luna=true)"
            ) from None
        if (name, label_value) not in out:
            out.append((name, label_value))
    if not out:
        raise ConfigError(
            f"{key}: no label in {value!r} (accepted: key=value or key1=value1,key2=value2, "
            "e.g. elotl-luna=true)"
        )
    return tuple(out)


def _annotations(value: object, key: str) -> tuple[tuple[str, str], ...]:
    # Luna's `podAnnotations` (docs.elotl.co/luna/configuration, v1.1 on): the same list
    # form as `labels`, for annotations; unset: no annotation marks a pod.
    out: list[tuple[str, str]] = []
    for item in parse_string_list(value, key) if value is not None else ():
        name, sep, annotation_value = (part.strip() for part in item.partition("="))
        try:
            if not sep or not annotation_value:
                raise ConfigError("no value")
            check_label(name, "")
        except ConfigError:
            raise ConfigError(
                f"{key}: invalid annotation {item!r} in {value!r} (accepted: empty, key=value "
                "or key1=value1,key2=value2 with Kubernetes annotation keys and non-empty values)"
            ) from None
        if (name, annotation_value) not in out:
            out.append((name, annotation_value))
    return tuple(out)


def _render_labels(value: Any) -> object:
    return ",".join(f"{k}={v}" for k, v in value)


def _architectures(value: object, key: str) -> tuple[str, ...]:
    items = parse_string_list(value, key)
    bad = [i for i in items if i not in ARCHITECTURES]
    if bad or not items:
        raise ConfigError(f"{key}: invalid architectures {value!r} (accepted: amd64, arm64)")
    return items


def _taints(value: object, key: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = parse_string_list(value, key)
    for item in items:
        body, _, effect = item.rpartition(":")
        if not body or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ConfigError(
                f"{key}: invalid taint {item!r} (accepted: key=value:Effect or key:Effect)"
            )
        # The API server refuses a taint (and a toleration) whose key is not a qualified
        # name or whose value is not a label value (apimachinery's validation of taints).
        taint_key, _, taint_value = body.partition("=")
        try:
            check_label(taint_key, taint_value)
        except ConfigError as error:
            raise ConfigError(f"{key}: invalid taint {item!r}: {error}") from None
    return items


_CLUSTER_ID = re.compile(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?")


def _cluster_id(value: object, key: str) -> str:
    # It becomes a label value and a cloud tag, so it must be a valid label value.
    text = str(value).strip()
    if not _CLUSTER_ID.fullmatch(text):
        raise ConfigError(
            f"{key}: invalid cluster id {value!r} (accepted: 1-63 lower-case letters, digits, "
            "'-' or '.', starting and ending with a letter or digit)"
        )
    return text


LABELS = ValueType(
    "labels key=value or key1=value1,key2=value2 (any one marks a pod)", _labels, _render_labels
)
ANNOTATIONS = ValueType(
    "annotations key=value or key1=value1,key2=value2 (any one marks a pod), or empty",
    _annotations,
    _render_labels,
)
ARCHITECTURE_LIST = ValueType(f"list of {', '.join(ARCHITECTURES)}", _architectures, as_list)
TAINTS = ValueType("list of taints key=value:Effect, or null", _taints, as_list)
CLUSTER_ID = ValueType("label value, 1-63 characters", _cluster_id, unchanged)

GENERAL = Section(
    "General",
    (
        Option(
            key="labels",
            attribute="managed_labels",
            value_type=LABELS,
            help="labels that mark pods Gibbous manages: key=value, or key1=value1,key2=value2 "
            "where a pod carrying any one of them is managed",
            luna="labels",
            since="0.1.0",
        ),
        Option(
            key="podAnnotations",
            attribute="managed_annotations",
            value_type=ANNOTATIONS,
            help="annotations that also mark pods Gibbous manages, as `labels` does (empty: none)",
            luna="podAnnotations",
            since="0.1.0",
        ),
        Option(
            key="cloudProvider",
            attribute="cloud",
            value_type=choice(CLOUDS),
            help="cloud: aws, gcp, azure or oci",
            luna="cloudProvider",
            since="0.1.0",
        ),
        Option(
            key="region",
            attribute="region",
            value_type=TRIMMED_TEXT,
            help="region of the catalog (empty: the cloud's default)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="zones",
            attribute="zones",
            value_type=STRING_LIST,
            help="zones nodes may be created in (empty: any)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="architectures",
            attribute="architectures",
            value_type=ARCHITECTURE_LIST,
            help="CPU architectures allowed for pods that do not ask for one",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="defaultInstanceOfferings",
            attribute="default_offerings",
            value_type=PRICE_CATEGORIES,
            help="price categories for pods without node.elotl.co/instance-offerings",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="binSelectPodCpuThreshold",
            attribute="bin_select_cpu_millis",
            value_type=CPU,
            help="a pod requesting at least this much CPU gets its own node (0 disables)",
            luna="binSelectPodCpuThreshold",
            since="0.1.0",
        ),
        Option(
            key="binSelectPodMemoryThreshold",
            attribute="bin_select_memory_bytes",
            value_type=BYTES,
            help="the same for memory (0 disables)",
            luna="binSelectPodMemoryThreshold",
            since="0.1.0",
        ),
        Option(
            key="binSelectPodGPUThreshold",
            attribute="bin_select_gpus",
            value_type=whole_number(0),
            help="the same for nvidia.com/gpu, in slices (0 disables)",
            luna="binSelectPodGPUThreshold",
            since="0.1.0",
        ),
        Option(
            key="binPackingEnabled",
            attribute="bin_packing_enabled",
            value_type=BOOLEAN,
            help="false: every pod gets its own node",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="binSelectNodeReuse",
            attribute="bin_select_node_reuse",
            value_type=BOOLEAN,
            help="bin-select pods may use an existing bin-select node with room",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="binPackingNodeCpu",
            attribute="bin_pack_node_cpu_millis",
            value_type=CPU,
            help="minimum vCPUs of a bin-pack node",
            luna="binPackingNodeCpu",
            since="0.1.0",
        ),
        Option(
            key="binPackingNodeMemory",
            attribute="bin_pack_node_memory_bytes",
            value_type=BYTES,
            help="minimum memory of a bin-pack node",
            luna="binPackingNodeMemory",
            since="0.1.0",
        ),
        Option(
            key="binPackingNodeGPU",
            attribute="bin_pack_node_gpus",
            value_type=whole_number(0),
            help="minimum GPUs (slices) of a bin-pack node",
            luna="binPackingNodeGPU",
            since="0.1.0",
        ),
        Option(
            key="binPackingNodeMinPodCount",
            attribute="bin_pack_node_min_pods",
            value_type=whole_number(0, 1000),
            help="fewest pods a bin-pack node must be able to run (its max pods; 0: no minimum)",
            luna="binPackingNodeMinPodCount",
            since="0.1.0",
        ),
        Option(
            key="binPackingNodeTypeRegexp",
            attribute="bin_pack_node_type_pattern",
            value_type=PATTERN,
            help="RE2 expression bin-pack instance types must match",
            luna="binPackingNodeTypeRegexp",
            since="0.1.0",
        ),
        Option(
            key="binPackingNodePricing",
            attribute="bin_pack_node_pricing",
            value_type=PRICE_CATEGORIES,
            help="price categories of bin-pack nodes",
            luna="binPackingNodePricing",
            since="0.1.0",
        ),
        Option(
            key="binPackingNodeStrategy",
            attribute="bin_pack_node_strategy",
            value_type=choice(("lowest-total-cost", "cheapest-node")),
            help="cheapest-node: Luna's rule; lowest-total-cost: the spec-meeting type that packs the pending pods cheapest",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="spotPriceRatioEstimate",
            attribute="spot_price_ratio",
            value_type=number(0.01, 1.0),
            help="spot $/hr = ratio x on-demand, when the catalog has no spot price",
            luna="spotPriceRatioEstimate",
            since="0.1.0",
        ),
        Option(
            key="scaleUpTimeout",
            attribute="scale_up_timeout_s",
            value_type=DURATION,
            help="a launch not done by then is cancelled and its type backed off",
            luna="scaleUpTimeout",
            since="0.1.0",
        ),
        Option(
            key="registrationTimeout",
            attribute="registration_timeout_s",
            value_type=DURATION,
            help="an instance that never becomes a Node is terminated after this",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="backoffDuration",
            attribute="backoff_s",
            value_type=DURATION,
            help="how long a failed (type, category, zone) is avoided",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="clusterID",
            attribute="cluster_id",
            value_type=CLUSTER_ID,
            help="names this cluster on the instances Gibbous launches (restarts find them by it)",
            luna="clusterID",
            since="0.1.0",
        ),
        Option(
            key="installName",
            attribute="install_name",
            value_type=TEXT,
            help="names this install among several in a cluster (with clusterID, the owner of its nodes)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="scaleUpBatchIdle",
            attribute="scale_up_batch_idle_s",
            value_type=DURATION,
            help="decide once no new pending pod arrived for this long",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="scaleUpBatchMax",
            attribute="scale_up_batch_max_s",
            value_type=DURATION,
            help="decide at the latest this long after the first new pending pod",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="orphanGracePeriod",
            attribute="orphan_grace_s",
            value_type=DURATION,
            help="an instance of ours with no Node and no launch is terminated after this",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="nvidiaGPUTimeSlices",
            attribute="nvidia_gpu_time_slices",
            value_type=whole_number(1, 64),
            help="NVIDIA time-slice replicas per physical GPU",
            luna="nvidiaGPUTimeSlices",
            since="0.1.0",
        ),
        Option(
            key="placeNodeSelector",
            attribute="place_node_selector",
            value_type=BOOLEAN,
            help="put pods' nodeSelector labels on the nodes created for them",
            luna="placeNodeSelector",
            since="0.1.0",
        ),
        Option(
            key="pendingPodReasonRegexp",
            attribute="pending_pod_reason_pattern",
            value_type=PATTERN,
            help="only pending pods whose condition message matches trigger scale-up (empty: every "
            "unschedulable pod, Luna's default)",
            luna="pendingPodReasonRegexp",
            since="0.1.0",
        ),
        Option(
            key="clusterGPULimit",
            attribute="cluster_gpu_limit",
            value_type=OPTIONAL_LIMIT,
            help="most GPUs Gibbous nodes may have in total (null: no limit)",
            luna="clusterGPULimit",
            since="0.1.0",
        ),
        Option(
            key="maxNodes",
            attribute="max_nodes",
            value_type=OPTIONAL_LIMIT,
            help="most nodes Gibbous may run (null: no limit)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="maxClusterCostPerHour",
            attribute="max_cost_per_hour",
            value_type=OPTIONAL_COST,
            help="most $/hr Gibbous nodes may cost in total (null: no limit)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="nodeTTL",
            attribute="node_ttl_s",
            value_type=DURATION,
            help="replace nodes older than this (0: never)",
            luna="NodeTTL",
            since="0.1.0",
        ),
        Option(
            key="webhookConfigPrefix",
            attribute="webhook_config_prefix",
            value_type=VERBATIM_TEXT,
            help="prefix of the webhook configuration names (sorts them after VPA's)",
            luna="webhookConfigPrefix",
            since="0.1.0",
        ),
        Option(
            key="schedulerName",
            attribute="scheduler_name",
            value_type=TRIMMED_TEXT,
            help="schedulerName the webhook sets on managed pods (empty: leave as is)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="provisioningGate",
            attribute="provisioning_gate",
            value_type=BOOLEAN,
            help="gate bin-select pods until their node exists (needs Kubernetes >= 1.27)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="reroutePodsOfStoppedScheduler",
            attribute="reroute_stuck_pods",
            value_type=BOOLEAN,
            help="delete pods a controller owns that wait on a stopped Gibbous scheduler, so they are "
            "recreated for the default scheduler (pods without an owner are never deleted)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="spotTolerations",
            attribute="spot_tolerations",
            value_type=TAINTS,
            help="taints spot-allowed pods get tolerations for (default: Gibbous's and the cloud's spot taint)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="managedNamespaces",
            attribute="managed_namespaces",
            value_type=STRING_LIST,
            help='namespaces whose pods are all managed; "*" = every namespace the webhook is called for',
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="estimateOnlyNamespaces",
            attribute="estimate_only_namespaces",
            value_type=STRING_LIST,
            help="namespaces whose managed pods get the nodecostestimate gate",
            luna=None,
            since="0.1.0",
        ),
    ),
)
