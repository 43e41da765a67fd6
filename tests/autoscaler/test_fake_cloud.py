"""The fake cloud, and the failure handling pieces composed on a fake clock."""

from __future__ import annotations

import pytest

from gibbous.autoscaler.cloud.base import (
    InstanceNotFoundError,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.core.choice.selection import build_offers, candidate_offers
from gibbous.core.planning.backoff import Backoffs, FailureKind
from gibbous.core.planning.demand import describe_pod
from tests.factories import catalog, config, spot_post_ray_head


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def request(
    token: str,
    instance_type: str = "m5.large",
    category: str = "on-demand",
    zones: tuple[str, ...] = (),
) -> LaunchRequest:
    return LaunchRequest(
        token=token, cluster_id="c1", instance_type=instance_type, category=category, zones=zones
    )


def test_create_is_idempotent_and_instances_boot_after_their_latency() -> None:
    clock = Clock()
    cloud = FakeCloudProvider(catalog("aws"), clock, boot_s=30)
    first = cloud.create(request("t1"))
    assert cloud.create(request("t1")).id == first.id  # same token, same instance
    assert first.state is InstanceState.PENDING and first.zone.startswith("us-west-2")
    clock.now = 31
    assert cloud.get(first.id).state is InstanceState.RUNNING
    assert [i.id for i in cloud.list("c1")] == [first.id]
    assert cloud.list("other") == []
    cloud.delete(first.id)
    with pytest.raises(InstanceNotFoundError):
        cloud.get(first.id)
    with pytest.raises(InstanceNotFoundError):
        cloud.delete(first.id)


def test_injected_failures_are_typed() -> None:
    cloud = FakeCloudProvider(catalog("aws"), Clock())
    cloud.stockouts.add(("m5.large", "spot", ""))
    with pytest.raises(InsufficientCapacityError) as stock:
        cloud.create(request("a", category="spot"))
    assert (stock.value.instance_type, stock.value.category) == ("m5.large", "spot")
    cloud.quota_exhausted.add(("m5.large", "on-demand"))
    with pytest.raises(QuotaExceededError):
        cloud.create(request("b"))
    cloud.throttle_next(2.5)
    with pytest.raises(ThrottledError) as throttled:
        cloud.create(request("c", instance_type="c5.large"))
    assert throttled.value.retry_after_s == 2.5


def test_zone_stockout_moves_to_the_next_zone_or_fails() -> None:
    cloud = FakeCloudProvider(catalog("aws"), Clock())
    cloud.stockouts.add(("m5.large", "on-demand", "us-west-2a"))
    placed = cloud.create(request("z", zones=("us-west-2a", "us-west-2b")))
    assert placed.zone == "us-west-2b"
    cloud.stockouts.add(("m5.large", "on-demand", "us-west-2b"))
    with pytest.raises(InsufficientCapacityError):
        cloud.create(request("z2", zones=("us-west-2a", "us-west-2b")))


def test_gke_spot_story_from_the_spot_post() -> None:
    """P10 on GKE: 2 GPUs of T4/P4/L4, spot or on-demand, at most 2 GPUs, under $4.75.
    The two T4 spot types hang until scaleUpTimeout (10m each) and are backed off; the P4
    spot type then launches, about 20 minutes in, at $1.36/hr, cheaper than T4 on-demand."""
    cfg = config(cloudProvider="gcp")
    gcp = catalog("gcp")
    offers = build_offers(gcp, cfg)
    pod = spot_post_ray_head()
    requirement = describe_pod(pod, cfg)[0].requirement
    clock = Clock()
    cloud = FakeCloudProvider(gcp, clock, boot_s=60)
    cloud.hangs |= {("n1-standard-32+t4x2", "spot"), ("n1-highmem-32+t4x2", "spot")}
    backoffs = Backoffs()
    attempts = []
    while True:
        choice = candidate_offers(
            requirement, offers, cfg, backed_off=backoffs.blocked_pairs(clock.now)
        ).offers[0]
        attempts.append((choice.name, str(choice.category), round(choice.price, 4)))
        instance = cloud.create(request(f"try-{len(attempts)}", choice.name, str(choice.category)))
        started = clock.now
        while (
            cloud.get(instance.id).state is not InstanceState.RUNNING
            and clock.now - started < cfg.scale_up_timeout_s
        ):
            clock.now += 15
        if cloud.get(instance.id).state is InstanceState.RUNNING:
            break
        cloud.delete(instance.id)  # cancel what was started
        backoffs = backoffs.add(
            instance_type=choice.name,
            category=str(choice.category),
            zone="",
            kind=FailureKind.LAUNCH_TIMEOUT,
            now=clock.now,
            duration_s=cfg.backoff_s,
        )
    assert attempts == [
        ("n1-standard-32+t4x2", "spot", 1.11),
        ("n1-highmem-32+t4x2", "spot", 1.2964),
        ("n1-standard-32+p4x2", "spot", 1.36),
    ]
    assert 20 * 60 <= clock.now <= 22 * 60  # "in around 20m"
    assert attempts[-1][2] < 2.22  # cheaper than T4 on-demand
    assert cloud.delete_calls and all(
        cloud.instances[i].state is InstanceState.TERMINATED for i in cloud.delete_calls
    )
