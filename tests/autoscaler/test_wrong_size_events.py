"""The autoscaler says so on the pods when the node it launches for them is far larger
than they ask (issue #30), and launches it anyway."""

from __future__ import annotations

from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.autoscaler.loop import Autoscaler
from gibbous.core import keys
from tests.autoscaler.fakes import Clock, FakeCluster, Tokens
from tests.factories import catalog, config, make_pod


def setup(cloud: str) -> tuple[Clock, FakeCloudProvider, FakeCluster, Autoscaler]:
    cfg = config(cloudProvider=cloud)
    clock = Clock()
    provider = FakeCloudProvider(catalog(cloud), clock)
    cluster = FakeCluster(provider, cfg)
    autoscaler = Autoscaler(
        cfg, provider, cluster, clock=clock, new_token=Tokens(), jitter=lambda: 0.5
    )
    return clock, provider, cluster, autoscaler


def steps(clock: Clock, autoscaler: Autoscaler, count: int) -> None:
    for _ in range(count):
        autoscaler.step()
        clock.advance(1.0)


def test_the_oci_1000gi_pod_is_told_of_its_bare_metal_node() -> None:
    # oci.csv: BM.Standard.E4.128 (128 OCPUs = 256 vCPU, 2048 GB; 128 x $0.025 + 2048 x
    # $0.0015 = $6.272/hr) is the cheapest shape that holds 1000Gi with the node's
    # reservations (the 1024 GB BM.Standard3.64 and BM.Standard.A1.160 do not): bare metal,
    # 256 vCPU for 4.
    clock, provider, cluster, autoscaler = setup("oci")
    cluster.add(make_pod("bigmem", cpu="4", memory="1000Gi"), make_pod("small", cpu="1"))
    for _ in range(15):  # until the decision (batched over a short window) is made
        steps(clock, autoscaler, 1)
        if provider.create_calls:
            break
    # `gibbous explain` reads the decision: it says so too.
    decision = autoscaler.decided["uid-bigmem"]
    assert decision.outcome == "launch"
    assert "; BM.Standard.E4.128 (bare metal) is far larger than its pods ask: " in decision.detail
    assert "is far larger" not in autoscaler.decided["uid-small"].detail
    steps(clock, autoscaler, 5)
    assert ("BM.Standard.E4.128", "on-demand") in [
        (r.instance_type, r.category) for r in provider.create_calls
    ]
    (warning,) = cluster.events_for("bigmem", keys.EVENT_WRONG_SIZE_NODE)
    assert warning.startswith(
        "BM.Standard.E4.128 (bare metal) is far larger than its pods ask: 256 vCPU for 4 CPU "
        "requested; launching it as the cheapest type that fits (BM.Standard.E4.128 "
        "(on-demand, $6.2720/hr))"
    )
    assert [w for _, r, _, w in cluster.events if r == keys.EVENT_WRONG_SIZE_NODE] == [True]
    assert cluster.events_for("small", keys.EVENT_WRONG_SIZE_NODE) == []
    assert cluster.events_for("bigmem", keys.EVENT_NODE_ADD_REQUEST_WARNING) == []


def test_a_cost_estimate_gated_pod_is_told_too_and_the_estimate_keeps_its_format() -> None:
    clock, provider, cluster, autoscaler = setup("oci")
    gated = make_pod("gated-bigmem", cpu="4", memory="1000Gi")
    gated["spec"]["schedulingGates"] = [{"name": "nodecostestimate"}]
    cluster.add(gated)
    steps(clock, autoscaler, 5)
    (estimate,) = cluster.events_for("gated-bigmem", keys.EVENT_NODE_COST_ESTIMATE)
    # Luna's format, which Nova's scripts parse (price at characters 17-24), unchanged.
    assert estimate == (
        "Estimated cost $6.272000/hr for node type BM.Standard.E4.128 (on-demand); "
        "estimated node count 1"
    )
    (warning,) = cluster.events_for("gated-bigmem", keys.EVENT_WRONG_SIZE_NODE)
    assert warning.startswith("BM.Standard.E4.128 (bare metal) is far larger than its pods ask")
    assert provider.create_calls == []
