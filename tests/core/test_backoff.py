from gibbous.core.planning.backoff import Backoffs, FailureKind


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


def test_records_carry_the_active_entries_to_another_process() -> None:
    backoffs = Backoffs()
    for instance_type, category, zone, kind, duration_s in (
        ("g4dn.xlarge", "spot", "", FailureKind.LAUNCH_TIMEOUT, 600),
        ("m5.large", "on-demand", "us-west-2a", FailureKind.INSUFFICIENT_CAPACITY, 10),
    ):
        backoffs = backoffs.add(
            instance_type=instance_type,
            category=category,
            zone=zone,
            kind=kind,
            now=100.0,
            duration_s=duration_s,
        )
    records = backoffs.to_records(now=200.0)  # the m5.large entry has ended
    assert records == [
        {
            "instanceType": "g4dn.xlarge",
            "category": "spot",
            "zone": "",
            "until": 700.0,
            "kind": "launch-timeout",
        }
    ]
    restored = Backoffs.from_records(records)
    assert restored.blocked_pairs(200.0) == {("g4dn.xlarge", "spot")}
    assert restored.active(200.0)[0].kind is FailureKind.LAUNCH_TIMEOUT


def test_malformed_records_are_skipped_not_fatal() -> None:
    good = {"instanceType": "p4d", "category": "spot", "zone": "", "until": 50, "kind": "quota"}
    records = [
        good,
        "junk",
        {**good, "until": "soon"},
        {**good, "until": True},
        {**good, "until": float("nan")},
        {**good, "kind": "bad-luck"},
        {**good, "instanceType": ""},
        {**good, "zone": None},
    ]
    assert [e.instance_type for e in Backoffs.from_records(records).active(0)] == ["p4d"]
    assert Backoffs.from_records({"not": "a list"}).entries == ()


def test_merging_keeps_the_later_end_of_each_pair() -> None:
    def one(until: float, kind: FailureKind) -> Backoffs:
        return Backoffs.from_records(
            [{"instanceType": "a", "category": "spot", "zone": "", "until": until, "kind": kind}]
        )

    merged = one(100, FailureKind.QUOTA).merged(one(300, FailureKind.LAUNCH_TIMEOUT))
    (entry,) = merged.entries
    assert entry.until == 300 and entry.kind is FailureKind.LAUNCH_TIMEOUT
    assert one(300, FailureKind.QUOTA).merged(one(100, FailureKind.LAUNCH_TIMEOUT)).entries[
        0
    ].kind is (FailureKind.QUOTA)
