"""A fresh dev cluster per run, with Gibbous or with Karpenter, started the same way.

Both: `gibbous dev-cluster up` (etcd, kube-apiserver, kube-controller-manager of the same
release, the real kube-scheduler), plus two processes the dev cluster does not run:

- the node-lifecycle controller's tainting, by a stand-in for every node (`standin.py`): the
  dev cluster turns the controller off, yet it is what keeps a NotReady node tainted
  `node.kubernetes.io/not-ready` until it is Ready;
- the KWOK controller (`sigs.k8s.io/kwok/cmd/kwok`), the node stand-in, managing every Node
  annotated `kwok.x-k8s.io/node=fake` (both systems' kwok providers annotate theirs so) with
  KWOK's own stages: node-initialize delayed by the trace's boot time, node-heartbeat, and the
  fast pod stages.

Gibbous: `dev-cluster up` with its defaults (the chart's), the kwok provider and
`--kwok-boot-seconds` = the boot time. Karpenter: `dev-cluster up --without-gibbous`, its CRDs,
a KWOKNodeClass, a NodePool allowing every type and both capacity types with
`consolidationPolicy: WhenEmptyOrUnderutilized` and default budgets, a GPU NodePool tainted
`nvidia.com/gpu:NoSchedule` (what Karpenter's docs recommend for accelerators), and the
KWOK provider reading the race's catalog.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes import config as kube_config

from bench.race.catalog import RaceCatalog, karpenter_instance_types
from bench.race.standin import NotReadyTaints
from gibbous.devcluster.controlplane import free_port
from gibbous.devcluster.peers import Peers
from gibbous.devcluster.stack import DevCluster

SYSTEMS = ("gibbous", "karpenter")
KWOK_ANNOTATION = "kwok.x-k8s.io/node=fake"
NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}


class RaceSetupError(RuntimeError):
    pass


READY_STATUS = '.status.conditions.[] | select( .type == "Ready" ) | .status'
# What a kubelet reports when it registers its Node, before the node is ready: Ready=False.
# Karpenter's KWOK provider creates its Nodes with no condition at all.
NODE_REGISTER = {
    "apiVersion": "kwok.x-k8s.io/v1alpha1",
    "kind": "Stage",
    "metadata": {"name": "node-register"},
    "spec": {
        "resourceRef": {"apiGroup": "v1", "kind": "Node"},
        "selector": {"matchExpressions": [{"key": READY_STATUS, "operator": "DoesNotExist"}]},
        "next": {
            "statusTemplate": (
                "{{ $now := Now }}\n"
                "conditions:\n"
                "- type: Ready\n"
                '  status: "False"\n'
                "  reason: KubeletNotReady\n"
                "  message: container runtime is starting\n"
                "  lastHeartbeatTime: {{ $now | Quote }}\n"
                "  lastTransitionTime: {{ $now | Quote }}\n"
                "phase: Pending\n"
            )
        },
    },
}


def kwok_stages(peers: Peers, boot_s: float) -> str:
    """KWOK's own stages, node-initialize taking NotReady nodes to Ready after the boot time,
    and before it `NODE_REGISTER`."""
    documents = [yaml.safe_dump(NODE_REGISTER, sort_keys=False)]
    for path in sorted(peers.kwok_stages.glob("*.yaml")):
        stage = yaml.safe_load(path.read_text())
        if stage["metadata"]["name"] == "node-initialize":
            stage["spec"]["selector"] = {
                "matchExpressions": [{"key": READY_STATUS, "operator": "In", "values": ["False"]}]
            }
            if boot_s > 0:
                stage["spec"]["delay"] = {"durationMilliseconds": int(boot_s * 1000)}
        documents.append(yaml.safe_dump(stage, sort_keys=False))
    return "---\n".join(documents)


def node_pools(catalog: RaceCatalog) -> list[dict[str, Any]]:
    architectures = list(catalog.config.architectures)
    common = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": architectures},
    ]
    disruption = {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "0s"}
    node_class = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}

    def pool(name: str, weight: int, requirements: list[Any], taints: list[Any]) -> dict[str, Any]:
        template: dict[str, Any] = {
            "nodeClassRef": node_class,
            "requirements": requirements,
            # What a kubelet registers its Node with, and Karpenter's KWOK provider leaves out:
            # without it the scheduler binds pods to Karpenter's nodes before they are Ready.
            "startupTaints": [NOT_READY_TAINT],
        }
        if taints:
            template["taints"] = taints
        return {
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": name},
            "spec": {
                "weight": weight,
                "template": {"spec": template},
                "disruption": disruption,
            },
        }

    gpu_families = {
        "key": "karpenter.kwok.sh/instance-family",
        "operator": "In",
        "values": catalog.gpu_families(),
    }
    return [
        pool("default", 1, common, []),
        pool(
            "gpu",
            10,
            [*common, gpu_families],
            [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
        ),
    ]


class RaceCluster:
    """`with RaceCluster(...) as cluster:` a running cluster; `cluster.api` talks to it."""

    def __init__(
        self,
        system: str,
        *,
        directory: Path,
        catalog: RaceCatalog,
        peers: Peers,
        boot_s: float,
        timeout_s: float = 180.0,
    ) -> None:
        if system not in SYSTEMS:
            raise RaceSetupError(f"unknown system {system!r}")
        self.system = system
        self.directory = directory
        self.catalog = catalog
        self.peers = peers
        self.boot_s = boot_s
        self.timeout_s = timeout_s
        self.dev = DevCluster(directory, out=io.StringIO())
        self.extras: dict[str, subprocess.Popen[bytes]] = {}
        self.api: client.ApiClient | None = None
        self.taints: NotReadyTaints | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    def __enter__(self) -> RaceCluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _start(self) -> None:
        # As a user starts it: `gibbous dev-cluster up`, whose processes outlive the command.
        command = [
            sys.executable,
            "-m",
            "gibbous",
            "dev-cluster",
            "up",
            "--dir",
            str(self.directory),
        ]
        if self.system == "gibbous":
            command.append(f"--kwok-boot-seconds={self.boot_s:g}")
        else:
            command.append("--without-gibbous")
        up = subprocess.run(
            command, capture_output=True, text=True, timeout=self.timeout_s * 3, check=False
        )
        if up.returncode != 0:
            raise RaceSetupError(f"dev-cluster up ({self.system}) failed:\n{up.stderr[-3000:]}")
        configuration = client.Configuration()
        kube_config.load_kube_config(
            config_file=str(self.kubeconfig), client_configuration=configuration
        )
        self.api = client.ApiClient(configuration)
        self.taints = NotReadyTaints(self.api)
        self.taints.begin()
        stages = self.directory / "kwok-stages.yaml"
        stages.write_text(kwok_stages(self.peers, self.boot_s))
        self._spawn(
            "kwok",
            [
                str(self.peers.kwok),
                f"--kubeconfig={self.kubeconfig}",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}",
                f"--config={stages}",
                f"--server-address=127.0.0.1:{free_port()}",
                # pod IPs come from one pool for all nodes: room for the largest trace
                "--cidr=10.0.0.1/16",
            ],
        )
        if self.system == "karpenter":
            self._start_karpenter()
        self._check_alive()

    def _start_karpenter(self) -> None:
        assert self.api is not None
        extensions = client.ApiextensionsV1Api(self.api)
        names = []
        for path in sorted(self.peers.karpenter_crds.glob("*.yaml")):
            crd = yaml.safe_load(path.read_text())
            extensions.create_custom_resource_definition(crd)
            names.append(crd["metadata"]["name"])
        self._wait_established(extensions, names)
        custom = client.CustomObjectsApi(self.api)
        custom.create_cluster_custom_object(
            "karpenter.kwok.sh",
            "v1alpha1",
            "kwoknodeclasses",
            {
                "apiVersion": "karpenter.kwok.sh/v1alpha1",
                "kind": "KWOKNodeClass",
                "metadata": {"name": "default"},
                "spec": {},
            },
        )
        for pool in node_pools(self.catalog):
            custom.create_cluster_custom_object("karpenter.sh", "v1", "nodepools", pool)
        types = self.directory / "karpenter-instance-types.json"
        types.write_text(json.dumps(karpenter_instance_types(self.catalog)))
        env = {
            "KUBECONFIG": str(self.kubeconfig),
            "SYSTEM_NAMESPACE": "kube-system",
            "DISABLE_LEADER_ELECTION": "true",
            "INSTANCE_TYPES_FILE_PATH": str(types),
            "METRICS_PORT": str(free_port()),
            "HEALTH_PROBE_PORT": str(free_port()),
            "LOG_LEVEL": "info",
        }
        self._spawn("karpenter", [str(self.peers.karpenter)], env=env)
        self._wait_node_pools_ready(custom)

    def _wait_established(self, extensions: Any, names: list[str]) -> None:
        deadline = time.monotonic() + self.timeout_s
        for name in names:
            while True:
                crd = extensions.read_custom_resource_definition(name)
                conditions = crd.status.conditions or [] if crd.status else []
                if any(c.type == "Established" and c.status == "True" for c in conditions):
                    break
                if time.monotonic() > deadline:
                    raise RaceSetupError(f"CRD {name} not established after {self.timeout_s:.0f}s")
                time.sleep(0.2)

    def _wait_node_pools_ready(self, custom: Any) -> None:
        """Karpenter provisions only for NodePools it has marked Ready."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            pools = custom.list_cluster_custom_object("karpenter.sh", "v1", "nodepools")["items"]
            ready = [
                any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (p.get("status") or {}).get("conditions") or []
                )
                for p in pools
            ]
            if pools and all(ready):
                return
            time.sleep(0.5)
        raise RaceSetupError(
            f"Karpenter's NodePools not Ready after {self.timeout_s:.0f}s; see {self.directory}/karpenter.log"
        )

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        with (self.directory / f"{name}.log").open("ab") as log:
            self.extras[name] = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )

    def _check_alive(self) -> None:
        for name, process in self.extras.items():
            if process.poll() is not None:
                tail = (self.directory / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RaceSetupError(f"{name} exited with {process.returncode}:\n{tail}")

    def check(self) -> None:
        """Raise if a process of the cluster died during the run."""
        self._check_alive()
        if self.taints is not None and self.taints.errors:
            raise RaceSetupError(f"the not-ready taint stand-in failed: {self.taints.errors[0]}")
        for name, alive in self.dev.running().items():
            if not alive:
                raise RaceSetupError(f"{name} of the {self.system} cluster stopped during the run")

    def stop(self) -> None:
        if self.taints is not None:
            self.taints.stop()
            self.taints = None
        for process in reversed(list(self.extras.values())):
            if process.poll() is None:
                process.terminate()
        for process in self.extras.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.extras.clear()
        if self.api is not None:
            self.api.close()
            self.api = None
        self._keep_logs()
        self.dev.down()

    def _keep_logs(self) -> None:
        """The run's logs outlive its cluster, beside its directory."""
        if not self.directory.is_dir():
            return
        kept = self.directory.with_name(self.directory.name + "-logs")
        kept.mkdir(parents=True, exist_ok=True)
        for log in self.directory.glob("*.log"):
            shutil.copy2(log, kept / log.name)
