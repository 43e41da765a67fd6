"""Issue #18: an UPDATE is refused only when it changes a Gibbous or Luna annotation to an
invalid value. A pod admitted with a bad annotation while the webhook was down can still be
labelled and have its gate lifted."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
from starlette.testclient import TestClient

from gibbous.core import keys
from gibbous.webhook.app import create_app
from tests.factories import config as make_config
from tests.factories import make_pod
from tests.webhook.test_hostile_input import answer, review


def update(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return review(new, operation="UPDATE", uid="u-update", old=old)


CLIENT = TestClient(create_app(make_config()))
BAD = {keys.INSTANCE_MAX_COST: "cheap"}


def test_an_update_that_leaves_a_bad_annotation_as_it_was_is_allowed() -> None:
    old = make_pod(annotations=BAD)
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"]["team"] = "ml"
    assert answer(CLIENT, "/validate", update(old, relabelled))["allowed"] is True
    released = copy.deepcopy(old)
    released["spec"]["nodeSelector"] = {keys.HOSTNAME: "node-1"}  # the autoscaler's release
    assert answer(CLIENT, "/validate", update(old, released))["allowed"] is True


def test_an_update_that_makes_an_annotation_invalid_is_refused() -> None:
    old = make_pod(annotations={keys.INSTANCE_MAX_COST: "4.75"})
    new = copy.deepcopy(old)
    new["metadata"]["annotations"][keys.INSTANCE_MAX_COST] = "cheap"
    denied = answer(CLIENT, "/validate", update(old, new))
    assert denied["allowed"] is False
    assert 'instance-max-cost: invalid value "cheap"' in denied["status"]["message"]


def test_only_the_changed_annotations_are_judged() -> None:
    old = make_pod(annotations=BAD)
    new = copy.deepcopy(old)
    new["metadata"]["annotations"][keys.INSTANCE_OFFERINGS] = "spot"  # valid, newly set
    assert answer(CLIENT, "/validate", update(old, new))["allowed"] is True
    fixed = copy.deepcopy(old)
    fixed["metadata"]["annotations"][keys.INSTANCE_MAX_COST] = "4.75"
    assert answer(CLIENT, "/validate", update(old, fixed))["allowed"] is True


def test_creates_are_judged_whole_as_before() -> None:
    assert answer(CLIENT, "/validate", review(make_pod(annotations=BAD)))["allowed"] is False


def test_schedulername_is_set_only_while_the_scheduler_is_alive() -> None:
    alive = [True]
    client = TestClient(
        create_app(make_config(schedulerName="gibbous-scheduler"), scheduler_alive=lambda: alive[0])
    )

    def scheduler_after_mutation() -> str | None:
        response = answer(client, "/mutate", review(make_pod()))
        patched = jsonpatch.apply_patch(make_pod(), json.loads(base64.b64decode(response["patch"])))
        name: str | None = patched["spec"].get("schedulerName")
        return name

    assert scheduler_after_mutation() == "gibbous-scheduler"
    alive[0] = False  # its Lease went stale: the default scheduler takes new pods
    assert scheduler_after_mutation() is None
    metrics = client.get("/metrics").text
    assert "gibbous_webhook_scheduler_routed 0.0" in metrics
    alive[0] = True
    assert scheduler_after_mutation() == "gibbous-scheduler"


def test_a_pod_naming_its_own_scheduler_keeps_it_and_the_review_says_so() -> None:
    client = TestClient(create_app(make_config(schedulerName="gibbous-scheduler")))
    pod = make_pod()
    pod["spec"]["schedulerName"] = "kai-scheduler"
    response = answer(client, "/mutate", review(pod))
    assert response["allowed"] is True
    patch = json.loads(base64.b64decode(response["patch"])) if "patch" in response else []
    assert jsonpatch.apply_patch(pod, patch)["spec"]["schedulerName"] == "kai-scheduler"
    assert any("kai-scheduler" in warning for warning in response["warnings"])
