"""NodeCostEstimate messages, parsed the way the Thrifty-Nova script parses Luna's."""

from __future__ import annotations

from gibbous.core import keys
from gibbous.core.planning.costestimate import GatedPod, estimate_messages, owner_of
from gibbous.core.planning.demand import describe_pod
from tests.factories import config, make_pod, offers


def parse(message: str) -> tuple[float, int]:
    """cost-schedule.sh: price = characters 17-24; count = 4th word of the 'estimated node count' part."""
    price = float(message[16:24])
    part = next(p for p in message.split("; ") if "estimated node count" in p)
    return price, int(part.split(" ")[3])


def worker(name: str, gpus: int, owner: str = "rs-1") -> GatedPod:
    pod = make_pod(
        name,
        cpu="16",
        memory="16Gi",
        gpus=gpus,
        annotations={keys.INSTANCE_GPU_SKUS: "L4,A10G,A10,L40S"},
    )
    pod["metadata"]["ownerReferences"] = [
        {"kind": "ReplicaSet", "name": "w", "uid": owner, "controller": True}
    ]
    pod["spec"]["schedulingGates"] = [{"name": "nodecostestimate"}]
    return GatedPod(describe_pod(pod, config())[0], owner_of(pod))


def test_two_one_gpu_workers_on_eks() -> None:
    messages = estimate_messages([worker("w0", 1), worker("w1", 1)], offers(), config())
    assert set(messages) == {"default/w0", "default/w1"}
    for message in messages.values():
        assert message.startswith(
            "Estimated cost $2.014400/hr for node type g6.8xlarge (on-demand)"
        )
        assert parse(message) == (2.0144, 2)


def test_two_two_gpu_workers_share_one_node() -> None:
    messages = estimate_messages([worker("w0", 2), worker("w1", 2)], offers(), config())
    assert {parse(m) for m in messages.values()} == {(4.6016, 1)}


def test_back_offs_change_the_estimate_and_nothing_left_is_reported() -> None:
    backed = frozenset({("g6.8xlarge", "on-demand")})
    messages = estimate_messages([worker("w0", 1)], offers(), config(), backed_off=backed)
    assert "g6.8xlarge" not in messages["default/w0"]
    a100 = make_pod(
        "a",
        cpu="1",
        gpus=1,
        annotations={keys.INSTANCE_GPU_SKUS: "A100", keys.INSTANCE_MAX_COST: "1"},
    )
    none = estimate_messages([GatedPod(describe_pod(a100, config())[0], "")], offers(), config())
    assert none["default/a"].startswith("No node type found: no A100 type")


def test_groups_are_per_owner() -> None:
    messages = estimate_messages(
        [worker("a0", 2, "rs-a"), worker("b0", 2, "rs-b")], offers(), config()
    )
    assert {parse(m) for m in messages.values()} == {(4.6016, 1)}  # one node each, not shared
