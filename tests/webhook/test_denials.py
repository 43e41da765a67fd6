"""Denial messages name the real field path, list every problem (up to a bound) and show
values as the manifest's JSON (issue #32). Expected messages are written out by hand."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from gibbous.core import keys
from gibbous.webhook.app import create_app
from tests.factories import config as make_config
from tests.factories import make_pod
from tests.webhook.test_hostile_input import review

ACCEPTED = "(accepted: a Kubernetes quantity such as 500m, 1.5, 2Gi, 512M or 1e3)"


def denial(pod: dict[str, Any]) -> str:
    client = TestClient(create_app(make_config()))
    reply = client.post("/validate", json=review(pod))
    assert reply.status_code == 200
    response = reply.json()["response"]
    assert response["allowed"] is False
    message: str = response["status"]["message"]
    return message


def test_a_bad_limit_is_named_by_its_own_path() -> None:
    # Before: "spec.containers[0].resources.memory", a field that does not exist.
    pod = make_pod()
    pod["spec"]["containers"][0]["resources"] = {"limits": {"memory": "lots"}}
    assert denial(pod) == (
        f'gibbous: spec.containers[0].resources.limits.memory: invalid quantity "lots" {ACCEPTED}'
    )


def test_every_problem_is_listed_with_values_as_json() -> None:
    # Before: only the first problem, its value printed as Python (True).
    pod = make_pod(annotations={keys.INSTANCE_MAX_COST: "cheap"})
    pod["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": True, "memory": None},
        "limits": {"memory": "1Gi"},
    }
    pod["spec"]["initContainers"] = [
        {"name": "setup", "resources": {"limits": {"cpu": [1]}}},
    ]
    assert denial(pod) == (
        'gibbous: annotation node.elotl.co/instance-max-cost: invalid value "cheap"; '
        "accepted: a positive number of dollars per hour in ASCII digits, e.g. 4.75; "
        f"spec.containers[0].resources.requests.cpu: invalid quantity true: not a number {ACCEPTED}; "
        f"spec.containers[0].resources.requests.memory: invalid quantity null: not a number {ACCEPTED}; "
        f"spec.initContainers[0].resources.limits.cpu: invalid quantity [1]: not a string or number {ACCEPTED}"
    )


def test_many_problems_are_counted_past_ten() -> None:
    pod = make_pod()
    pod["spec"]["containers"][0]["resources"] = {
        "requests": {f"example.com/r{index:02d}": "x" for index in range(14)}
    }
    listed = "; ".join(
        f'spec.containers[0].resources.requests.example.com/r{index:02d}: invalid quantity "x" {ACCEPTED}'
        for index in range(10)
    )
    assert denial(pod) == f"gibbous: {listed}; and 4 more problems"
