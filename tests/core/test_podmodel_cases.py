"""Pod-model rules the mutation report (docs/mutation.md) showed no test held. Expected
values are counted by hand here from the rule's definition (the rule-size docstring, the
workload kinds' API fields), never taken from the code under test."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.core.errors import ManifestError
from gibbous.core.podmodel.rulesize import rule_items
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
