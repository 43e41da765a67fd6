from gibbous.core.backoff import Backoffs, FailureKind


def test_backoff_expires_and_is_never_shortened() -> None:
    registry = Backoffs().add(
        instance_type="g4dn.xlarge",
        category="spot",
        zone="",
        kind=FailureKind.INSUFFICIENT_CAPACITY,
        now=0,
        duration_s=900,
    )
    assert registry.blocked_pairs(100) == {("g4dn.xlarge", "spot")}
    shorter = registry.add(
        instance_type="g4dn.xlarge",
        category="spot",
        zone="",
        kind=FailureKind.QUOTA,
        now=100,
        duration_s=60,
    )
    assert shorter.blocked_pairs(800) == {("g4dn.xlarge", "spot")}
    assert shorter.blocked_pairs(900) == frozenset()
    assert len(shorter.entries) == 1


def test_zone_entries_block_only_their_zone() -> None:
    registry = Backoffs().add(
        instance_type="m5.large",
        category="on-demand",
        zone="us-west-2a",
        kind=FailureKind.INSUFFICIENT_CAPACITY,
        now=0,
        duration_s=60,
    )
    assert registry.blocked_pairs(10) == frozenset()
    assert registry.blocked_zones("m5.large", "on-demand", 10) == {"us-west-2a"}
    assert registry.is_blocked("m5.large", "on-demand", "us-west-2a", 10)
    assert not registry.is_blocked("m5.large", "on-demand", "us-west-2b", 10)
    assert not registry.is_blocked("m5.large", "on-demand", "us-west-2a", 61)


def test_expired_entries_are_dropped_when_adding() -> None:
    registry = Backoffs().add(
        instance_type="a",
        category="spot",
        zone="",
        kind=FailureKind.LAUNCH_TIMEOUT,
        now=0,
        duration_s=10,
    )
    registry = registry.add(
        instance_type="b",
        category="spot",
        zone="",
        kind=FailureKind.LAUNCH_TIMEOUT,
        now=20,
        duration_s=10,
    )
    assert [e.instance_type for e in registry.entries] == ["b"]
