"""Pod-model rules the mutation report (docs/mutation.md) showed no test held. Expected
values are counted by hand here from the rule's definition (the rule-size docstring, the
workload kinds' API fields), never taken from the code under test."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.core.errors import InvalidAnnotationError, InvalidAnnotationsError, ManifestError
from gibbous.core.podmodel.affinity import pod_node_affinity
from gibbous.core.podmodel.constraints import parse_bool_annotation, parse_constraints
from gibbous.core.podmodel.pods import (
    is_mirror_pod,
    pod_requests,
    priority_of,
    quantity_problems,
    uid_of,
)
from gibbous.core.podmodel.podtopology import pod_topology
from gibbous.core.podmodel.resources import Resources
from gibbous.core.podmodel.rulesize import rule_items
from gibbous.core.podmodel.slim import slim_pod
from gibbous.core.podmodel.workloads import pod_template, whole_number


def _pod(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": spec}


def test_a_pod_without_rules_has_none() -> None:
    assert rule_items(_pod({"containers": [{"name": "c"}]})) == 0
    assert rule_items({"metadata": {}}) == 0


def test_node_selector_and_tolerations_count_one_each() -> None:
    pod = _pod(
        {
            "nodeSelector": {"a": "1", "b": "2", "c": "3"},
            "tolerations": [{"key": "x", "operator": "Exists"}, {"key": "y"}],
        }
    )
    assert rule_items(pod) == 3 + 2


def test_node_affinity_counts_terms_expressions_fields_and_values() -> None:
    pod = _pod(
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                # term 1 + expression 1 + values 3 + expression 1 (no values)
                                "matchExpressions": [
                                    {"key": "k", "operator": "In", "values": ["a", "b", "c"]},
                                    {"key": "j", "operator": "Exists"},
                                ],
                                # field 1 + value 1
                                "matchFields": [
                                    {"key": "metadata.name", "operator": "In", "values": ["n"]}
                                ],
                            },
                            {},  # term 1
                        ]
                    },
                    # preferred terms are not read, so not counted
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "preference": {"matchExpressions": [{"key": "z"}] * 50}}
                    ],
                }
            }
        }
    )
    assert rule_items(pod) == (1 + 1 + 3 + 1 + 1 + 1) + 1


def test_pod_affinity_terms_count_every_selector_part() -> None:
    term = {
        # term 1
        "labelSelector": {
            "matchLabels": {"app": "a", "tier": "b"},  # 2
            "matchExpressions": [{"key": "k", "operator": "In", "values": ["x", "y"]}],  # 1 + 2
        },
        "namespaceSelector": {"matchLabels": {"team": "t"}},  # 1
        "namespaces": ["n1", "n2"],  # 2
        "matchLabelKeys": ["pod-template-hash"],  # 1
        "mismatchLabelKeys": ["tenant", "zone"],  # 2
        "topologyKey": "kubernetes.io/hostname",
    }
    one_term = 1 + 2 + 3 + 1 + 2 + 1 + 2
    pod = _pod(
        {
            "affinity": {
                "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]},
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [term, {}],
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "podAffinityTerm": term}
                    ],
                },
            }
        }
    )
    assert rule_items(pod) == one_term + one_term + 1


def test_topology_spread_counts_constraint_selector_and_label_keys() -> None:
    pod = _pod(
        {
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {
                        "matchLabels": {"app": "a"},  # 1
                        "matchExpressions": [{"key": "v", "operator": "Exists"}],  # 1
                    },
                    "matchLabelKeys": ["pod-template-hash", "rev"],  # 2
                },
                {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname"},  # 1
            ]
        }
    )
    assert rule_items(pod) == (1 + 1 + 1 + 2) + 1


def test_shapes_the_readers_refuse_count_as_nothing() -> None:
    pod = _pod(
        {
            "nodeSelector": ["not", "a", "map"],
            "tolerations": {"not": "a list"},
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            "not a term",  # a term of an unreadable shape still counts 1
                            {"matchExpressions": ["x", {"values": "not a list"}]},
                        ]
                    }
                },
                "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": "x"},
            },
            "topologySpreadConstraints": ["x"],
        }
    )
    # term 1; term 1 + two expressions of 1 each (no readable values); the constraint 1
    assert rule_items(pod) == 1 + (1 + 1 + 1) + 1


# --- workloads ---------------------------------------------------------------------------


def test_whole_numbers_for_replicas_and_parallelism() -> None:
    assert whole_number(None, 1, "w") == 1
    assert whole_number(0, 1, "w") == 0
    assert whole_number(7, 1, "w") == 7
    for bad in (-1, True, 1.5, "3"):
        with pytest.raises(ManifestError) as raised:
            whole_number(bad, 1, "Deployment/web spec.replicas")
        assert str(raised.value) == (
            f"Deployment/web spec.replicas: expected a whole number >= 0, got {bad!r}"
        )


def test_pod_template_at_a_dotted_path() -> None:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}
    cron = {"spec": {"jobTemplate": {"spec": {"template": template}}}}
    assert pod_template(cron, "spec.jobTemplate.spec.template", "w") is template
    broken: dict[str, Any]
    for broken in (
        {"spec": {"jobTemplate": {"spec": {"template": {"metadata": {}}}}}},  # no spec
        {"spec": {"jobTemplate": {"spec": {"template": {"spec": []}}}}},  # spec not a map
        {"spec": {"jobTemplate": ["x"]}},
        {},
    ):
        with pytest.raises(ManifestError) as raised:
            pod_template(broken, "spec.jobTemplate.spec.template", "CronJob/nightly")
        assert str(raised.value) == (
            "CronJob/nightly: missing pod template at spec.jobTemplate.spec.template"
        )


# --- pods, annotations, selectors ----------------------------------------------------------


def test_every_unreadable_quantity_is_named_requests_and_limits() -> None:
    pod = _pod(
        {
            "containers": [
                {
                    "name": "c",
                    "resources": {
                        "requests": {"cpu": "two", "memory": "lots"},
                        "limits": {"memory": "1Gb"},
                    },
                }
            ]
        }
    )
    fields = [str(problem).split(":")[0] for problem in quantity_problems(pod)]
    assert fields == [
        "spec.containers[0].resources.requests.cpu",
        "spec.containers[0].resources.requests.memory",
        "spec.containers[0].resources.limits.memory",
    ]


def test_a_pod_level_limit_without_request_is_the_request() -> None:
    # API defaulting (PodLevelResources): spec.resources.requests defaults from its limits
    # for a resource no container requests.
    pod = _pod(
        {
            "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
            "containers": [{"name": "c", "resources": {}}],
        }
    )
    requests = pod_requests(pod)
    assert (requests.cpu_millis, requests.memory_bytes) == (2000, 2**30)


def test_mirror_pods_by_annotation_or_node_owner() -> None:
    static = {"metadata": {"annotations": {"kubernetes.io/config.mirror": "hash"}}}
    owned = {"metadata": {"ownerReferences": [{"kind": "Node", "name": "n1"}]}}
    replica = {"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "r"}]}}
    assert is_mirror_pod(static) and is_mirror_pod(owned) and not is_mirror_pod(replica)


def test_slim_pods_keep_their_owners() -> None:
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "web-7d9f",
        "uid": "5f3c",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    slim = slim_pod({"metadata": {"name": "web", "ownerReferences": [owner]}, "spec": {}})
    kept = {k: v for k, v in owner.items() if k != "blockOwnerDeletion"}
    assert slim["metadata"]["ownerReferences"] == [kept]


def test_boolean_annotations_read_true_and_false_in_any_case() -> None:
    assert parse_bool_annotation("pod.elotl.co/do-not-evict", "true") is True
    assert parse_bool_annotation("pod.elotl.co/do-not-evict", " FALSE ") is False
    with pytest.raises(InvalidAnnotationError):
        parse_bool_annotation("pod.elotl.co/do-not-evict", "yes")


def test_max_gpus_takes_up_to_six_digits() -> None:
    key = "node.elotl.co/instance-max-gpus"
    assert parse_constraints({key: "100000"}).max_gpus == 100_000
    with pytest.raises(InvalidAnnotationsError):
        parse_constraints({key: "1000000"})


def test_pod_affinity_selector_expressions_select_by_value() -> None:
    term = {
        "labelSelector": {
            "matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]
        },
        "topologyKey": "kubernetes.io/hostname",
    }
    pod = _pod(
        {
            "affinity": {
                "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
            }
        }
    )
    (parsed,) = pod_topology(pod).anti_affinity
    assert parsed.selects("default", {"app": "api"})
    assert not parsed.selects("default", {"app": "db"})


def test_a_node_affinity_expression_without_key_matches_no_label() -> None:
    # The API server refuses an expression without a key; read anyway, it names no label,
    # not a label called "None".
    pod = _pod(
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"operator": "Exists"}]}]
                    }
                }
            }
        }
    )
    assert not pod_node_affinity(pod).matches({"None": "x", "zone": "a"})


def test_annotation_errors_name_their_key_and_why() -> None:
    with pytest.raises(InvalidAnnotationsError) as raised:
        parse_constraints(
            {
                "node.elotl.co/instance-offerings": "spot,spot",
                "node.elotl.co/instance-family-inclusions": "g5,,g6",
            }
        )
    text = str(raised.value)
    assert 'node.elotl.co/instance-offerings: invalid value "spot,spot" (repeated category)' in text
    assert 'node.elotl.co/instance-family-inclusions: invalid value "g5,,g6"' in text


def test_a_pod_affinity_term_with_namespaces_selects_only_there() -> None:
    # kube-scheduler: a term's namespaces list replaces the pod's own namespace.
    term = {
        "labelSelector": {"matchLabels": {"app": "db"}},
        "namespaces": ["data"],
        "topologyKey": "topology.kubernetes.io/zone",
    }
    pod = _pod(
        {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}}
    )
    (parsed,) = pod_topology(pod).affinity
    assert parsed.selects("data", {"app": "db"})
    assert not parsed.selects("default", {"app": "db"})


def test_a_spread_policy_other_than_honor_or_ignore_names_its_field() -> None:
    constraint = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "nodeTaintsPolicy": "Sometimes",
    }
    with pytest.raises(ManifestError) as raised:
        pod_topology(_pod({"topologySpreadConstraints": [constraint]}))
    assert str(raised.value).startswith("spec.topologySpreadConstraints[0].nodeTaintsPolicy: ")


def test_gt_and_lt_are_strict() -> None:
    # kube-scheduler's Gt and Lt: the label's integer strictly greater / less than the value.
    def affinity(operator: str) -> Any:
        expression = {"key": "cores", "operator": operator, "values": ["4"]}
        return pod_node_affinity(
            _pod(
                {
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [{"matchExpressions": [expression]}]
                            }
                        }
                    }
                }
            )
        )

    assert affinity("Gt").matches({"cores": "5"}) and not affinity("Gt").matches({"cores": "4"})
    assert affinity("Lt").matches({"cores": "3"}) and not affinity("Lt").matches({"cores": "4"})


def test_fit_checks_pods_and_ephemeral_storage_each_on_its_own() -> None:
    # kube-scheduler's NodeResourcesFit: every resource against allocatable, pods included.
    node = Resources(cpu_millis=4000, memory_bytes=2**34, pods=110, ephemeral_bytes=10**10)
    assert Resources(cpu_millis=100, pods=110).fits_in(node)
    assert not Resources(cpu_millis=100, pods=111).fits_in(node)
    assert not Resources(cpu_millis=100, pods=1, ephemeral_bytes=10**10 + 1).fits_in(node)


def test_extended_resources_add_and_subtract_by_name() -> None:
    fpga = Resources(extended=(("example.com/fpga", 2),))
    assert (Resources() + fpga).extended == (("example.com/fpga", 2),)
    assert (fpga + Resources(extended=(("a.io/x", 1),))).extended == (
        ("a.io/x", 1),
        ("example.com/fpga", 2),
    )
    assert (fpga - fpga).extended == ()  # a zero amount is no entry
    assert Resources().maximum(fpga).extended == (("example.com/fpga", 2),)


def test_priority_is_the_spec_integer_or_zero() -> None:
    assert priority_of(_pod({"priority": 1000})) == 1000
    assert priority_of(_pod({"priority": True})) == 0
    assert priority_of(_pod({})) == 0


def test_sidecars_count_beside_the_app_and_during_later_init_containers() -> None:
    # KEP-753 (kube-scheduler's PodRequests): sidecars (init containers with restartPolicy
    # Always) run beside the app containers and beside every init container after them.
    def pod(*init: dict[str, Any]) -> dict[str, Any]:
        app = {"name": "app", "resources": {"requests": {"cpu": "500m"}}}
        return _pod({"initContainers": list(init), "containers": [app]})

    sidecar = {
        "name": "proxy",
        "restartPolicy": "Always",
        "resources": {"requests": {"cpu": "200m"}},
    }
    job = {"name": "migrate", "resources": {"requests": {"cpu": "1"}}}
    assert pod_requests(pod(sidecar)).cpu_millis == 500 + 200
    assert pod_requests(pod(sidecar, job)).cpu_millis == 1000 + 200  # the init peak
    assert pod_requests(pod(job, sidecar)).cpu_millis == 1000  # before the sidecar starts


def test_a_match_fields_term_never_matches_a_node_not_yet_created() -> None:
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    pod = _pod(
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
                }
            }
        }
    )
    assert not pod_node_affinity(pod).matches({"kubernetes.io/hostname": "n1"})


def test_a_pod_without_uid_has_an_empty_one() -> None:
    assert uid_of({"metadata": {}}) == "" and uid_of({"metadata": {"uid": "u-1"}}) == "u-1"
