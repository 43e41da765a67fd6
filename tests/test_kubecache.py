"""The list+watch cache: paged lists, one decode per object, what it tells, and its metrics."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from gibbous.core.podmodel.slim import slim_pod
from gibbous.kubecache import Informer, register_cache_metrics
from tests.factories import make_pod


class Reply:
    def __init__(self, document: dict[str, Any]) -> None:
        self.data = json.dumps(document).encode()


def paged_list(pods: list[dict[str, Any]], calls: list[dict[str, Any]]) -> Any:
    def list_function(**arguments: Any) -> Reply:
        calls.append(arguments)
        start = int(arguments.get("_continue") or 0)
        end = start + arguments["limit"]
        metadata = {"resourceVersion": "42"}
        if end < len(pods):
            metadata["continue"] = str(end)
        return Reply({"items": pods[start:end], "metadata": metadata})

    return list_function


def test_a_list_is_read_in_pages_and_kept_as_records() -> None:
    pods = [make_pod(f"p{i}") for i in range(7)]
    for pod in pods:
        pod["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    calls: list[dict[str, Any]] = []
    stored: list[tuple[str, Any]] = []
    informer = Informer(
        paged_list(pods, calls),
        name="pods",
        decode=slim_pod,
        on_stored=lambda key, pod: stored.append((key, pod)),
        page_size=3,
    )
    informer.list_once()
    assert [c.get("_continue") for c in calls] == [None, "3", "6"]
    assert all(c["limit"] == 3 for c in calls)
    assert informer.resource_version == "42" and len(informer) == 7
    assert "managedFields" not in informer.get("default/p0")["metadata"]  # type: ignore[index]
    assert [key for key, _ in stored] == [f"default/p{i}" for i in range(7)]
    registry = CollectorRegistry()
    register_cache_metrics(registry, "gibbous_test", [informer])
    text = generate_latest(registry).decode()
    assert 'gibbous_test_cache_objects{cache="pods"} 7.0' in text
    assert 'gibbous_test_cache_decodes_total{cache="pods"} 7.0' in text
    # A relist tells what went away.
    del pods[:5]
    informer.list_once()
    assert ("default/p0", None) in stored and len(informer) == 2
