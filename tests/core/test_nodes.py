from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import Offer
from gibbous.core.planning.nodes import node_labels, node_taints
from gibbous.core.planning.placement import node_view
from gibbous.core.podmodel.affinity import pod_node_affinity
from tests.factories import config, make_pod, offers


def offer(name: str, category: str) -> Offer:
    return next(o for o in offers() if o.name == name and str(o.category) == category)


def test_labels_round_trip_through_the_extenders_reading() -> None:
    cfg = config(placeNodeSelector=True)
    chosen = offer("g4dn.xlarge", "spot")
    labels = node_labels(
        chosen,
        Placement.BIN_SELECT,
        cfg,
        zone="us-west-2b",
        assigned_pod_uid="u-1",
        affinity=pod_node_affinity(make_pod(node_selector={"team": "ml", keys.ARCH: "amd64"})),
    )
    assert labels[keys.CREATED_BY] == "gibbous"
    assert labels[keys.PLACEMENT] == "bin-select" and labels[keys.ASSIGNED_POD_UID] == "u-1"
    assert labels[keys.INSTANCE_TYPE] == "g4dn.xlarge" and labels[keys.ZONE] == "us-west-2b"
    assert labels["team"] == "ml"  # placeNodeSelector
    assert labels[keys.ARCH] == "amd64"  # a node property: matched, never copied
    taints = node_taints(chosen)
    assert taints == [{"key": keys.SPOT_TAINT_KEY, "value": "spot", "effect": "NoSchedule"}]
    view = node_view(
        {
            "metadata": {"name": "n", "labels": labels},
            "spec": {"taints": taints},
            "status": {
                "allocatable": {
                    "cpu": "3800m",
                    "memory": "14Gi",
                    "nvidia.com/gpu": "1",
                    "pods": "29",
                }
            },
        }
    )
    assert view.created_by_gibbous and view.placement is Placement.BIN_SELECT
    assert str(view.category) == "spot" and view.gpu_sku == "T4" and view.gpu_count == 1
    assert view.price_per_hour == round(0.526 * 0.5, 4)


def test_bin_pack_on_demand_nodes_have_no_taint_and_no_assignment() -> None:
    chosen = offer("m5.xlarge", "on-demand")
    labels = node_labels(
        chosen, Placement.BIN_PACK, config(), zone=None, assigned_pod_uid="ignored"
    )
    assert keys.ASSIGNED_POD_UID not in labels and keys.ZONE not in labels
    assert node_taints(chosen) == []
