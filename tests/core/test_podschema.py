"""Pods the API server would refuse are refused by field path, not read as if the malformed
field were absent. The expected shapes are the Kubernetes API reference's (PodSpec,
Affinity, NodeAffinity: `requiredDuringSchedulingIgnoredDuringExecution` is a NodeSelector
object whose `nodeSelectorTerms` is required; `tolerations` is a list of Toleration)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from gibbous.core.errors import ManifestError
from gibbous.core.planning.demand import describe_pod
from gibbous.core.podmodel.podschema import MAX_PROBLEMS, pod_spec_problems
from gibbous.core.podmodel.podschema_data import DEFINITIONS, KUBERNETES_VERSION
from gibbous.devcluster.installtools import openapi_document
from tests.factories import config as make_config

MALFORMED = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "workloads"
    / "k8s-pod-with-node-affinity-malformed.yaml"
)
REQUIRED = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"


def test_the_kubernetes_docs_pod_at_its_malformed_commit_is_named() -> None:
    pod = yaml.safe_load(MALFORMED.read_text())
    assert pod_spec_problems(pod["spec"]) == [
        f"{REQUIRED}: expected an object (NodeSelector), got a list"
    ]
    with pytest.raises(ManifestError, match="the API server refuses this structure"):
        describe_pod(pod, make_config())


def test_the_corrected_pod_passes() -> None:
    pod = yaml.safe_load(MALFORMED.read_text())
    pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
        ]
    }
    assert pod_spec_problems(pod["spec"]) == []


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"tolerations": {"key": "a"}}, "spec.tolerations: expected a list, got an object"),
        (
            {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}},
            f"{REQUIRED}.nodeSelectorTerms: required (NodeSelector), missing",
        ),
        (
            {"nodeSelector": {"zone": 5}},
            "spec.nodeSelector.zone: expected a string, got the number 5",
        ),
        (
            {
                "topologySpreadConstraints": [
                    {"maxSkew": "1", "topologyKey": "z", "whenUnsatisfiable": "DoNotSchedule"}
                ]
            },
            "spec.topologySpreadConstraints[0].maxSkew: expected an integer, got a string",
        ),
        ({"priority": True}, "spec.priority: expected an integer, got the boolean true"),
    ],
)
def test_each_shape_the_api_server_enforces(spec: dict[str, object], problem: str) -> None:
    problems = pod_spec_problems(spec)
    assert len(problems) == 1 and problems[0].startswith(problem)


def test_fields_gibbous_does_not_read_and_nulls_are_left_alone() -> None:
    spec = {"volumes": "anything", "tolerations": None, "affinity": {"nodeAffinity": None}}
    assert pod_spec_problems(spec) == []


def test_a_hostile_pod_is_answered_briefly_and_fast() -> None:
    spec = {"tolerations": [["x"]] * 100_000}
    started = time.perf_counter()
    problems = pod_spec_problems(spec)
    assert time.perf_counter() - started < 1.0
    assert len(problems) == MAX_PROBLEMS + 1 and problems[-1] == "and more"


def test_the_shipped_shapes_are_the_openapi_documents() -> None:
    # The OpenAPI document the chart tests use (fetched by the test command's install step,
    # cached): every field of every shipped definition has the document's type, and the
    # required lists agree.
    path = openapi_document(KUBERNETES_VERSION)
    document = json.loads(path.read_text())["definitions"]
    # Pod fields refer to core/v1 definitions, and to meta/v1's LabelSelector.
    prefixes = ("io.k8s.api.core.v1.", "io.k8s.apimachinery.pkg.apis.meta.v1.")
    by_short = {
        name.rsplit(".", 1)[-1]: schema
        for name, schema in document.items()
        if name.startswith(prefixes)
    }

    def kind(schema: dict[str, object]) -> str:
        if "$ref" in schema:
            return "ref"
        return str(schema.get("format") or schema.get("type"))

    for name, definition in DEFINITIONS.items():
        schema = by_short[name]
        assert tuple(sorted(schema.get("required", []))) == definition["required"], name
        for field, shape in definition["fields"].items():
            declared = kind(schema["properties"][field])
            if isinstance(shape, tuple):
                expected = "array" if shape[0] == "array" else "object"
            elif shape in ("string", "integer", "boolean", "number", "int-or-string"):
                expected = shape
            else:
                expected = "ref"
            assert declared in (expected, "int32", "int64") or (
                declared == "ref" and shape == "quantity"
            ), (name, field, declared, shape)
