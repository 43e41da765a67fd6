"""Issue #12 end to end: the real `aws` provider against the EC2/EKS emulator, a node agent
that registers Nodes only from what each instance's user data gives its kubelet, the real
control plane, kube-scheduler and extender.

Nothing but the user data labels the nodes: if Gibbous's user data were wrong, the nodes
would register bare and the pods would not bind (and a GibbousRepairedNode event would
show the autoscaler patching them, which these tests forbid)."""

from __future__ import annotations

import csv
import gzip
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gibbous.autoscaler.cloud.aws import AwsCloudProvider, discover
from gibbous.autoscaler.process import AutoscalerService
from gibbous.core import keys
from gibbous.core.settings.config import Config
from gibbous.devcluster.aws.agent import NodeAgent
from gibbous.devcluster.aws.emulator import Ec2Emulator
from gibbous.devcluster.aws.state import INSTANCE_PROFILE, SeededCluster
from gibbous.devcluster.controlplane import ControlPlane
from tests.e2e.conftest import (
    SUITE_LABEL,
    bound_pods,
    crash,
    eventually,
    make_namespace,
    repair_events,
    running_extender,
    start_autoscaler,
    suite_pod,
)
from tests.factories import catalog, config

pytestmark = pytest.mark.e2e

CLUSTER = "e2e-eks"
SCHEDULER = "gibbous-eks-e2e"
NAMESPACE = "eks-e2e"
AWS_CATALOG = Path(__file__).resolve().parents[2] / "gibbous" / "catalogs" / "aws.csv.gz"
ROOT_VOLUME = {
    "DeviceName": "/dev/xvda",
    "Ebs": {"VolumeSize": 80, "VolumeType": "gp3", "DeleteOnTermination": True},
}


def eks_config(**extra: object) -> Config:
    return config(
        clusterID=CLUSTER,
        placeNodeSelector=True,
        provisioningGate=True,
        scaleUpTimeout="3m",
        aws={"nodeInstanceProfile": INSTANCE_PROFILE, "blockDeviceMappings": [ROOT_VOLUME]},
        **extra,
    )


@pytest.fixture(scope="module")
def emulator(api: client.ApiClient) -> Iterator[tuple[Ec2Emulator, SeededCluster]]:
    version = client.VersionApi(api).get_code()
    emulated = Ec2Emulator()
    emulated.start()
    seeded = emulated.seed(CLUSTER, f"{version.major}.{version.minor.rstrip('+')}")
    stopped = threading.Event()
    agent = NodeAgent(
        api,
        time.time,
        ec2=emulated.client("ec2"),
        eks=emulated.client("eks"),
        iam=emulated.client("iam"),
        catalog=catalog("aws"),
        cluster_name=CLUSTER,
        region="us-west-2",
        boot_s=2,
    )
    threads = [
        threading.Thread(target=emulated.run, args=(stopped,), daemon=True),
        threading.Thread(target=agent.run, args=(stopped, 0.5), daemon=True),
    ]
    for thread in threads:
        thread.start()
    yield emulated, seeded
    stopped.set()
    for thread in threads:
        thread.join(timeout=10)
    emulated.stop()


@pytest.fixture(scope="module")
def scheduler(api: client.ApiClient, control_plane: ControlPlane) -> Iterator[None]:
    with running_extender(api, eks_config()) as url:
        control_plane.start_scheduler(scheduler_name=SCHEDULER, extender_url=url)
        yield


def aws_provider(emulated: Ec2Emulator, cfg: Config) -> AwsCloudProvider:
    return discover(
        ec2=emulated.client("ec2"),
        eks=emulated.client("eks"),
        ssm=emulated.client("ssm"),
        iam=emulated.client("iam"),
        config=cfg,
        catalog=catalog("aws"),
        clock=time.time,
    )


def start_service(
    api: client.ApiClient, emulated: Ec2Emulator, cfg: Config, identity: str
) -> AutoscalerService:
    return start_autoscaler(api, aws_provider(emulated, cfg), cfg, identity)


def pod(
    name: str,
    *,
    cpu: str,
    gpus: int = 0,
    spot: bool = False,
    gated: bool = False,
    suite: str = "eks",
) -> dict[str, Any]:
    # placeNodeSelector puts it on the nodes made for it: each test gets fresh nodes.
    return suite_pod(name, suite, scheduler=SCHEDULER, cpu=cpu, gpus=gpus, spot=spot, gated=gated)


def instances(emulated: Ec2Emulator, *states: str) -> list[dict[str, Any]]:
    filters = [{"Name": f"tag:kubernetes.io/cluster/{CLUSTER}", "Values": ["owned"]}]
    if states:
        filters.append({"Name": "instance-state-name", "Values": list(states)})
    reply = emulated.client("ec2").describe_instances(Filters=filters)
    return [i for r in reply["Reservations"] for i in r["Instances"]]


def diagnosis(core: client.CoreV1Api) -> str:
    pods = [
        (
            p.metadata.name,
            p.spec.node_name,
            [g.name for g in p.spec.scheduling_gates or []],
            [c.message for c in p.status.conditions or []],
        )
        for p in core.list_namespaced_pod(NAMESPACE).items
    ]
    nodes = [
        (
            n.metadata.name,
            [(t.key, t.effect) for t in n.spec.taints or []],
            [(c.type, c.status) for c in n.status.conditions or []],
            n.status.allocatable,
        )
        for n in core.list_node().items
    ]
    return f"pods={pods} nodes={nodes}"


def cheapest_in_catalog(emulated: Ec2Emulator, *, min_vcpu: int, gpus: bool, spot: bool) -> str:
    """The cheapest amd64 type of the AWS catalog file in us-west-2 with at least
    `min_vcpu` vCPUs (a 3 CPU pod fits no 2-vCPU type once the kubelet's reservation and
    the DaemonSets are taken; a 1 CPU pod fits 2 vCPUs), with GPUs or without; spot at
    the price the emulated EC2 reports in its first zone (the others add 2 % each, for
    every type alike, so the order is the same)."""
    with gzip.open(AWS_CATALOG, "rt", newline="") as lines:
        rows = [
            r
            for r in csv.DictReader(lines)
            if r["region"] == "us-west-2"
            and r["arch"] == "amd64"
            and (int(r["gpu_count"]) >= 1) is gpus
            and float(r["vcpu"]) >= min_vcpu
        ]

    def price(row: dict[str, str]) -> float:
        name = row["instance_type"]
        return emulated.spot_prices[name] if spot else float(row["on_demand_usd_per_hour"])

    return min(rows, key=lambda r: (price(r), r["instance_type"]))["instance_type"]


def test_spot_prices_are_what_ec2_reports(emulator: tuple[Ec2Emulator, SeededCluster]) -> None:
    emulated, _ = emulator
    types = {t.name: t for t in aws_provider(emulated, eks_config()).instance_types()}
    # The emulator reports a price per zone (+2% per zone after the first): the mean is used.
    base = emulated.spot_prices["t3a.xlarge"]
    price = types["t3a.xlarge"].spot_price
    assert price is not None and abs(price - base * (1.00 + 1.02 + 1.04) / 3) < 1e-5


def test_pods_get_ec2_nodes_that_register_from_their_user_data(
    api: client.ApiClient, scheduler: None, emulator: tuple[Ec2Emulator, SeededCluster]
) -> None:
    emulated, seeded = emulator
    cfg = eks_config()
    make_namespace(api, NAMESPACE)
    core = client.CoreV1Api(api)
    service = start_service(api, emulated, cfg, "eks-a")
    try:
        # A managed Deployment of small pods, and two bin-select pods gated as the webhook
        # gates them.
        template = pod("web", cpu="300m")
        template["metadata"] = {"labels": {**template["metadata"]["labels"], "app": "web"}}
        client.AppsV1Api(api).create_namespaced_deployment(
            NAMESPACE,
            {
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": template["metadata"], "spec": template["spec"]},
                },
            },
        )
        for manifest in (
            pod("gpu", cpu="1", gpus=1, gated=True),
            pod("spot", cpu="3", spot=True, gated=True),
        ):
            core.create_namespaced_pod(NAMESPACE, manifest)

        def names() -> list[str]:
            return [p.metadata.name for p in core.list_namespaced_pod(NAMESPACE).items]

        eventually(lambda: len(names()) == 5, what="the Deployment's pods created")
        try:
            placed = eventually(
                lambda: bound_pods(core, NAMESPACE, names()), timeout_s=120, what="every pod bound"
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; {diagnosis(core)}") from None
        web_nodes = {node for name, node in placed.items() if name.startswith("web-")}
        assert len(web_nodes) == 1  # bin-packed onto one node
        running = {i["PrivateDnsName"]: i for i in instances(emulated, "running")}
        assert set(placed.values()) <= set(running)
        assert len(running) == 3  # one bin-pack node for the small pods, one each for the others
        expected = {  # from the catalog file and the spot prices EC2 reports
            "gpu": cheapest_in_catalog(emulated, min_vcpu=2, gpus=True, spot=False),
            "spot": cheapest_in_catalog(emulated, min_vcpu=4, gpus=False, spot=True),
        }
        for name, instance_type in expected.items():
            instance = running[placed[name]]
            assert instance["InstanceType"] == instance_type, name
            assert (instance.get("InstanceLifecycle") == "spot") == (name == "spot")
        for node_name, instance in running.items():
            node = core.read_node(node_name)
            labels = node.metadata.labels
            gpu = instance["InstanceType"].startswith(("g", "p"))
            image_path = (
                f"/aws/service/eks/optimized-ami/{seeded.version}/amazon-linux-2023/x86_64/"
                f"{'nvidia' if gpu else 'standard'}/recommended/image_id"
            )
            assert instance["ImageId"] == seeded.images[image_path]
            assert instance["SubnetId"] == seeded.subnets[instance["Placement"]["AvailabilityZone"]]
            assert [g["GroupId"] for g in instance["SecurityGroups"]] == [seeded.security_group]
            assert instance["IamInstanceProfile"]["Arn"].endswith(
                f"instance-profile/{INSTANCE_PROFILE}"
            )
            assert instance["MetadataOptions"]["HttpTokens"] == "required"
            assert [d["DeviceName"] for d in instance["BlockDeviceMappings"]] == ["/dev/xvda"]
            # Registered from the user data alone: Gibbous's labels and taints are there.
            assert (
                node.spec.provider_id
                == f"aws:///{instance['Placement']['AvailabilityZone']}/{instance['InstanceId']}"
            )
            assert labels[keys.CREATED_BY] == keys.CREATED_BY_VALUE
            assert labels[SUITE_LABEL] == "eks"
            spot = instance.get("InstanceLifecycle") == "spot"
            assert labels[keys.CAPACITY_TYPE] == ("spot" if spot else "on-demand")
            assert any(t.key == keys.SPOT_TAINT_KEY for t in node.spec.taints or []) == spot
        gpu_pod = core.read_namespaced_pod("gpu", NAMESPACE)
        assert (
            core.read_node(placed["gpu"]).metadata.labels[keys.ASSIGNED_POD_UID]
            == gpu_pod.metadata.uid
        )
        assert not gpu_pod.spec.scheduling_gates  # released by the autoscaler
        assert repair_events(core) == []  # nothing had to be patched on after registration
    finally:
        service.stop()
        client.AppsV1Api(api).delete_namespaced_deployment("web", NAMESPACE)
        for pod_name in [p.metadata.name for p in core.list_namespaced_pod(NAMESPACE).items]:
            core.delete_namespaced_pod(pod_name, NAMESPACE)  # as users do: with grace
        eventually(
            lambda: not core.list_namespaced_pod(NAMESPACE).items,
            timeout_s=60,
            what="pods gone (the node agent finishes deletions after the grace period)",
        )


def test_a_spot_launch_ec2_fails_after_accepting_it_is_replaced_in_seconds(
    api: client.ApiClient, scheduler: None, emulator: tuple[Ec2Emulator, SeededCluster]
) -> None:
    emulated, _ = emulator
    cfg = eks_config()
    core = client.CoreV1Api(api)
    body = pod("spot-retry", cpu="3", spot=True, gated=True, suite="retry")
    first = cheapest_in_catalog(emulated, min_vcpu=4, gpus=False, spot=True)
    emulated.fail_spot_launches(first, after_s=0.5)  # before the node could boot (2 s)
    service = start_service(api, emulated, cfg, "eks-b")
    started = time.monotonic()
    try:
        core.create_namespaced_pod(NAMESPACE, body)
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, ["spot-retry"]), timeout_s=120, what="bound"
        )
        took = time.monotonic() - started
        assert took < cfg.scale_up_timeout_s / 2, took  # seconds, not scaleUpTimeout
        failed = [
            i
            for i in instances(emulated, "terminated")
            if i["InstanceType"] == first
            and i.get("StateReason", {}).get("Code") == "Server.InsufficientInstanceCapacity"
        ]
        assert failed, "the first choice was launched and failed"
        zone = failed[0]["Placement"]["AvailabilityZone"]
        assert service.autoscaler.backoffs.is_blocked(first, "spot", zone, time.time())
        replacement = next(
            i for i in instances(emulated, "running") if i["PrivateDnsName"] == placed["spot-retry"]
        )
        assert (replacement["InstanceType"], replacement["Placement"]["AvailabilityZone"]) != (
            first,
            zone,
        )
    finally:
        emulated.failing.clear()
        service.stop()
        core.delete_namespaced_pod("spot-retry", NAMESPACE)


def test_a_restart_mid_launch_adopts_and_scale_down_terminates_the_instance(
    api: client.ApiClient, scheduler: None, emulator: tuple[Ec2Emulator, SeededCluster]
) -> None:
    emulated, _ = emulator
    cfg = eks_config(**{"scaleDown.unneededTime": "5s", "scaleDown.delayAfterAdd": "5s"})
    core = client.CoreV1Api(api)
    before = {i["InstanceId"] for i in instances(emulated)}
    first = start_service(api, emulated, cfg, "eks-c")
    second: AutoscalerService | None = None
    try:
        core.create_namespaced_pod(NAMESPACE, pod("adopted", cpu="3", gated=True, suite="adopt"))
        eventually(lambda: first.autoscaler.launches, timeout_s=60, what="a launch in flight")
        crash(first)  # mid-launch, its record is lost with it
        second = start_service(api, emulated, cfg, "eks-d")
        placed = eventually(
            lambda: bound_pods(core, NAMESPACE, ["adopted"]), timeout_s=120, what="bound"
        )
        ours = [i for i in instances(emulated) if i["InstanceId"] not in before]
        assert len(ours) == 1, "adopted, not launched twice"
        instance = ours[0]
        assert instance["PrivateDnsName"] == placed["adopted"]
        core.delete_namespaced_pod("adopted", NAMESPACE)  # with its grace period, as a user does
        eventually(
            lambda: (
                instances(emulated, "terminated")
                and any(
                    i["InstanceId"] == instance["InstanceId"]
                    for i in instances(emulated, "terminated")
                )
            ),
            timeout_s=120,
            what="the empty node scaled down: its instance terminated",
        )
        eventually(
            lambda: placed["adopted"] not in {n.metadata.name for n in core.list_node().items},
            what="its Node removed",
        )
    finally:
        first.stop()
        if second is not None:
            second.stop()
