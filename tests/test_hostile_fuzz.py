"""Hypothesis-generated hostile requests against the webhook and extender apps (issue #19).

Every reply is a valid AdmissionReview (with a patch that applies to the submitted object)
or a valid ExtenderFilterResult / HostPriorityList, or a 4xx; never a 500, never an internal
error answered as if it were the pod author's fault or let through unvalidated."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gibbous.core import keys
from gibbous.core.planning.placement import OBSERVED_UTILIZATION
from gibbous.extender.app import create_app as create_extender
from gibbous.extender.state import PodLedger, StaticView
from gibbous.webhook.app import create_app as create_webhook
from gibbous.webhook.metrics import WebhookMetrics
from tests.factories import config as make_config
from tests.webhook.test_hostile_input import review

# Values that broke or nearly broke parsing: exa suffixes, Unicode digits, separators,
# specials, long runs, signs, empty strings, and things that are not strings at all.
HOSTILE_TEXT = st.sampled_from(
    [
        "1E",
        "1Ei",
        "10E",
        "1E3",
        "²",
        "①",
        "٣",
        "１",
        "1\u00a0",
        "1_000",
        "inf",
        "nan",
        "-1",
        "+1",
        ".",
        "-",
        "Ki",
        "Pi",
        "e3",
        "1e1001",
        "1" * 80,
        "1" * 70 + "x",
        "",
        " ",
        "0.5",
        "4.75",
        "2",
        "1Gi",
        "500m",
        "cpu=1.2.3",
        "cpu=61.0,memory=40.5",
        "(",
        "^g5\\.",
    ]
) | st.text(alphabet="0123456789.+-eEiKMGTPnum,=²٣_ x", max_size=12)
HOSTILE_VALUE = HOSTILE_TEXT | st.integers(-5, 10**20) | st.none() | st.booleans() | st.floats()
ANNOTATION_KEYS = st.sampled_from(
    [
        keys.INSTANCE_MAX_GPUS,
        keys.INSTANCE_MAX_COST,
        keys.INSTANCE_OFFERINGS,
        keys.INSTANCE_TYPE_REGEXP,
        keys.INSTANCE_GPU_SKUS,
        keys.INSTANCE_FAMILY_INCLUSIONS,
        keys.DO_NOT_EVICT,
        "other.example.com/note",
    ]
)
RESOURCE_NAMES = st.sampled_from(
    ["cpu", "memory", "nvidia.com/gpu", "ephemeral-storage", "example.com/widget", "pods"]
)


def with_nesting(text: str) -> str:
    """`"__deep_N__"` placeholders become N nested arrays (too deep for json.dumps to write)."""
    for depth in (10, 900, 990, 1100):
        text = text.replace(f'"__deep_{depth}__"', "[" * depth + "]" * depth)
    return text


@st.composite
def pods(draw: st.DrawFn) -> Any:
    resources = {
        section: draw(st.dictionaries(RESOURCE_NAMES, HOSTILE_VALUE, max_size=3))
        for section in draw(st.lists(st.sampled_from(["requests", "limits"]), max_size=2))
    }
    container: Any = {"name": "c", "image": "pause", "resources": resources}
    spec: Any = {"containers": [container]}
    if draw(st.booleans()):
        spec["tolerations"] = draw(
            st.lists(st.none() | st.just({"key": "k", "operator": "Exists"}), max_size=2)
        )
    if draw(st.booleans()):
        spec["initContainers"] = [copy.deepcopy(container) | {"restartPolicy": "Always"}]
    spec = draw(st.sampled_from([spec, spec, spec, None, "spec", ["spec"]]))
    labels: Any = {"elotl-luna": "true"} | draw(
        st.dictionaries(st.sampled_from(["app", keys.PLACEMENT]), HOSTILE_VALUE, max_size=2)
    )
    metadata: Any = {
        "name": "p",
        "namespace": "default",
        "uid": "u",
        "labels": labels,
        "annotations": draw(st.dictionaries(ANNOTATION_KEYS, HOSTILE_TEXT, max_size=4)),
    }
    pod: Any = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata}
    if spec is not None:
        pod["spec"] = spec
    if draw(st.integers(0, 9)) == 0:
        pod["deep"] = f"__deep_{draw(st.sampled_from([10, 900, 990, 1100]))}__"
    return pod


@st.composite
def nodes(draw: st.DrawFn, name: str) -> Any:
    labels: Any = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    keys.PRICE_PER_HOUR,
                    keys.GPU_COUNT,
                    "nvidia.com/gpu.count",
                    keys.CREATED_BY,
                    keys.PLACEMENT,
                    keys.CAPACITY_TYPE,
                    keys.INSTANCE_TYPE,
                    keys.ASSIGNED_POD_UID,
                ]
            ),
            HOSTILE_VALUE,
            max_size=5,
        )
    )
    return {
        "metadata": {
            "name": name,
            "resourceVersion": "1",
            "labels": labels,
            "annotations": {OBSERVED_UTILIZATION: draw(HOSTILE_TEXT)},
        },
        "spec": {
            "taints": draw(
                st.lists(
                    st.none()
                    | st.just({"key": keys.HOT_NODE_TAINT, "value": "hot", "effect": "NoSchedule"}),
                    max_size=2,
                )
            )
        },
        "status": {"allocatable": draw(st.dictionaries(RESOURCE_NAMES, HOSTILE_VALUE, max_size=3))},
    }


WEBHOOK_METRICS = WebhookMetrics()
WEBHOOK = TestClient(
    create_webhook(make_config(schedulerName="gibbous-scheduler"), metrics=WEBHOOK_METRICS)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pod=pods(), operation=st.sampled_from(["CREATE", "UPDATE"]))
def test_webhook_replies_are_reviews_with_patches_that_apply(pod: Any, operation: str) -> None:
    body = review(pod, operation=operation, uid="fuzz")
    text = with_nesting(json.dumps(body, allow_nan=True))
    errors_before = _internal_errors()
    for path in ("/mutate", "/validate"):
        reply = WEBHOOK.post(path, content=text.encode())
        assert reply.status_code == 200 or 400 <= reply.status_code < 500, reply.status_code
        if reply.status_code != 200:
            continue
        answer = reply.json()
        assert answer["apiVersion"] == "admission.k8s.io/v1"
        assert answer["kind"] == "AdmissionReview"
        response = answer["response"]
        assert response["uid"] == "fuzz" and isinstance(response["allowed"], bool)
        if not response["allowed"]:
            assert isinstance(response["status"]["message"], str)
        if "patch" in response:
            assert response["patchType"] == "JSONPatch"
            operations = json.loads(base64.b64decode(response["patch"]))
            jsonpatch.apply_patch(body["request"]["object"], operations)
    assert _internal_errors() == errors_before


def _internal_errors() -> float:
    total = 0.0
    for metric in WEBHOOK_METRICS.registry.collect():
        if metric.name == "gibbous_webhook_internal_errors":
            total += sum(sample.value for sample in metric.samples)
    return total


EXTENDER_KEYS = {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pod=pods(),
    sent=st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=4).flatmap(
        lambda names: st.tuples(st.just(names), st.tuples(*(nodes(n) for n in names)))
    ),
    full=st.booleans(),
)
def test_extender_replies_are_on_the_wire_format(
    pod: Any, sent: tuple[list[str], tuple[Any, ...]], full: bool
) -> None:
    names, node_objects = sent
    view = StaticView(dict(zip(names, node_objects, strict=True)), PodLedger())
    client = TestClient(create_extender(make_config(), view))
    args = {
        "Pod": pod,
        "Nodes": {"items": list(node_objects)} if full else None,
        "NodeNames": None if full else names,
    }
    text = with_nesting(json.dumps(args, allow_nan=True)).encode()
    reply = client.post("/filter", content=text)
    assert reply.status_code == 200 or 400 <= reply.status_code < 500
    if reply.status_code == 200:
        result = reply.json()
        assert set(result) == EXTENDER_KEYS and isinstance(result["Error"], str)
        assert "internal error" not in result["Error"]
        if result["Error"] == "":
            kept = (
                [n["metadata"]["name"] for n in result["Nodes"]["items"]]
                if full
                else result["NodeNames"]
            )
            assert set(kept) <= set(names)
            assert all(isinstance(v, str) for v in result["FailedNodes"].values())
    reply = client.post("/prioritize", content=text)
    assert reply.status_code == 200 or 400 <= reply.status_code < 500
    if reply.status_code == 200:
        scores = reply.json()
        assert [s["Host"] for s in scores] == names
        assert all(type(s["Score"]) is int and 0 <= s["Score"] <= 10 for s in scores)
