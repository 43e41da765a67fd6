"""Every label, annotation, taint, gate and event key Gibbous reads or writes.

Luna's keys (`node.elotl.co/...`, `pod.elotl.co/...`) are spelled exactly as
Luna spells them, so Luna users keep their manifests. Keys Luna does not define
live under `gibbous.dev/`. docs/decisions.md records each choice.
"""

from __future__ import annotations

# --- pod management -------------------------------------------------------------
DEFAULT_MANAGED_LABEL = "elotl-luna=true"

# --- pod annotations (Luna) -----------------------------------------------------
INSTANCE_OFFERINGS = "node.elotl.co/instance-offerings"
INSTANCE_MAX_COST = "node.elotl.co/instance-max-cost"
INSTANCE_TYPE_REGEXP = "node.elotl.co/instance-type-regexp"
INSTANCE_GPU_SKUS = "node.elotl.co/instance-gpu-skus"
INSTANCE_MAX_GPUS = "node.elotl.co/instance-max-gpus"
INSTANCE_FAMILY_INCLUSIONS = "node.elotl.co/instance-family-inclusions"
INSTANCE_FAMILY_EXCLUSIONS = "node.elotl.co/instance-family-exclusions"
DO_NOT_EVICT = "pod.elotl.co/do-not-evict"
# Luna's opt-out: "To prevent Luna from matching a given pod annotate it with
# pod.elotl.co/ignore: true" (docs.elotl.co/luna/configuration, v1.2).
IGNORE = "pod.elotl.co/ignore"
LUNA_ANNOTATION_PREFIXES = ("node.elotl.co/", "pod.elotl.co/")

NODE_CONSTRAINT_ANNOTATIONS = (
    INSTANCE_OFFERINGS,
    INSTANCE_MAX_COST,
    INSTANCE_TYPE_REGEXP,
    INSTANCE_GPU_SKUS,
    INSTANCE_MAX_GPUS,
    INSTANCE_FAMILY_INCLUSIONS,
    INSTANCE_FAMILY_EXCLUSIONS,
)
# Every Luna pod annotation Gibbous acts on; another key under Luna's prefixes is one it
# would silently drop, so the webhook warns about it.
KNOWN_LUNA_ANNOTATIONS = frozenset((*NODE_CONSTRAINT_ANNOTATIONS, DO_NOT_EVICT, IGNORE))

# --- eviction opt-outs honoured from other autoscalers ----------------------------
CA_SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
KARPENTER_DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"

# --- pod labels Gibbous writes -------------------------------------------------------
PLACEMENT = "gibbous.dev/placement"  # also a node label
PLACEMENT_BIN_PACK = "bin-pack"
PLACEMENT_BIN_SELECT = "bin-select"

# --- dev cluster ------------------------------------------------------------------
# What a pod uses, for the dev cluster's metrics.k8s.io (`cpu=1800m,memory=1Gi`), where no
# kubelet measures: usage is then a pod's own word, its requests without it.
SIMULATED_USAGE = "gibbous.dev/simulated-usage"

# --- scheduling gates ------------------------------------------------------------
PROVISIONING_GATE = "gibbous.dev/provisioning"
COST_ESTIMATE_GATE = "nodecostestimate"  # Luna's name, estimate-only pods

# --- node labels Gibbous writes -------------------------------------------------------
CREATED_BY = "node.elotl.co/created-by"
CREATED_BY_VALUE = "gibbous"
# Which install (clusterID plus installName) created the node: several installs in one
# cluster each act only on their own nodes (`gibbous.core.choice.ownership`).
OWNER = "gibbous.dev/owner"
CAPACITY_TYPE = "gibbous.dev/capacity-type"
PRICE_PER_HOUR = "gibbous.dev/price-per-hour"
ASSIGNED_POD_UID = "gibbous.dev/assigned-pod-uid"
GPU_SKU = "gibbous.dev/gpu-sku"
GPU_COUNT = "gibbous.dev/gpu-count"
INSTANCE_FAMILY = "gibbous.dev/instance-family"
# The catalog's name for the node's type: on GKE `n1-standard-4+t4x1` is a machine type plus
# accelerators, and the node's own instance-type label (GKE's) says only `n1-standard-4`.
CATALOG_TYPE = "gibbous.dev/instance-type"

# --- standard labels --------------------------------------------------------------
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
INSTANCE_TYPE_BETA = "beta.kubernetes.io/instance-type"
ZONE = "topology.kubernetes.io/zone"
ZONE_BETA = "failure-domain.beta.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"
ARCH = "kubernetes.io/arch"
ARCH_BETA = "beta.kubernetes.io/arch"
OS = "kubernetes.io/os"
HOSTNAME = "kubernetes.io/hostname"

# Capacity-type labels other provisioners set; read so static and foreign nodes
# are understood by the extender.
KARPENTER_CAPACITY_TYPE = "karpenter.sh/capacity-type"
EKS_CAPACITY_TYPE = "eks.amazonaws.com/capacityType"
GKE_SPOT = "cloud.google.com/gke-spot"
AKS_SCALESET_PRIORITY = "kubernetes.azure.com/scalesetpriority"

# --- taints -----------------------------------------------------------------------
SPOT_TAINT_KEY = CAPACITY_TYPE  # gibbous.dev/capacity-type=spot:NoSchedule
HOT_NODE_TAINT = "gibbous.dev/hot-node"  # value warm|hot, effect NoSchedule
# On the autoscaler's Lease: the leader's active back-offs (JSON), for the next leader.
BACKOFFS = "gibbous.dev/backoffs"
HOT_NODE_WARM = "warm"
HOT_NODE_HOT = "hot"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

# --- resources --------------------------------------------------------------------
NVIDIA_GPU = "nvidia.com/gpu"

# --- GKE GPU time-sharing nodeSelectors --------------------------------------------------
GKE_GPU_SHARING_STRATEGY = "cloud.google.com/gke-gpu-sharing-strategy"
GKE_MAX_SHARED_CLIENTS = "cloud.google.com/gke-max-shared-clients-per-gpu"

# --- events ------------------------------------------------------------------------
EVENT_NODE_COST_ESTIMATE = "NodeCostEstimate"
# Luna's: Gibbous cannot obtain a node for the pod (no candidate left). Nova re-places the
# workload on another cluster when it sees it (P00), so it is sent only on giving up.
EVENT_NODE_ADD_REQUEST_WARNING = "NodeAddRequestWarning"
# On the pods of a launch given up (timed out, or failed after acceptance) while Gibbous
# goes on to the next candidate for them.
EVENT_TRYING_NEXT_CANDIDATE = "GibbousTryingNextCandidate"
# On a Node (or pod) Gibbous cannot read in part or whole, once per version of it.
EVENT_CANNOT_READ = "GibbousCannotRead"
# On a Node of ours that registered without labels or taints its launch asked for.
EVENT_NODE_REPAIRED = "GibbousRepairedNode"
# On a Node whose instance Gibbous terminated but whose Node object it could not delete.
EVENT_NODE_DELETE_FAILED = "GibbousNodeDeleteFailed"
# On a gated pod whose gate Gibbous could not lift, or lifted without pinning it.
EVENT_RELEASE_FAILED = "GibbousReleaseFailed"
EVENT_RELEASED_UNPINNED = "GibbousReleasedUnpinned"
# On the pods of a launch abandoned after repeated provider errors.
EVENT_LAUNCH_ABANDONED = "GibbousLaunchAbandoned"
# On the pods of a launch whose type is far larger than they ask in a dimension they did not
# ask for (a GPU machine for pods without GPUs, bare metal for a small pod): the launch goes on.
EVENT_WRONG_SIZE_NODE = "GibbousWrongSizeNode"
# On a pod waiting for the Gibbous scheduler while that is not running.
EVENT_SCHEDULER_STOPPED = "GibbousSchedulerNotRunning"
# On the autoscaler's own pod: hot-node mitigation is on but metrics.k8s.io cannot be read.
EVENT_HOT_NODE_METRICS_UNAVAILABLE = "GibbousHotNodeMetricsUnavailable"
# Consolidation (`gibbous.core.lifecycle.consolidation`): on each node it retires, when the
# replacement is launched, when the drain starts, and when the replacement is given up; on
# each pod of a retiring node when its drain starts.
EVENT_CONSOLIDATION_REPLACING = "GibbousReplacingNode"
EVENT_CONSOLIDATION_DRAINING = "GibbousConsolidationDraining"
EVENT_CONSOLIDATION_ABANDONED = "GibbousReplacementAbandoned"
EVENT_CONSOLIDATION_MOVING_POD = "GibbousConsolidationMovingPod"
