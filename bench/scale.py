"""Gibbous at cluster scale, against a real API server (`python -m bench.scale`).

A control plane of the current release (etcd + kube-apiserver, no scheduler: pods are
created bound) is filled in two steps, first to --first (default 1,000 nodes / 10,000
pods), then to --nodes / --pods (default 5,000 / 50,000). Pods are the Deployment-owned
pod of `tests/fixtures/admissionreview_pod_create.json` (managedFields, env, volumes,
probes), managed, ten per node; nodes are Gibbous bin-pack nodes (no cluster id, so no
provider claims them). At each size, as separate processes started afresh:

* `gibbous autoscaler --provider kwok` and `gibbous extender`: time from start to ready
  (initial sync), then resident memory once their caches hold every object;
* the baseline: the same two caches holding the API's JSON dicts (the design before
  compact records), measured in the same run.

At the full size: the extender process's filter/prioritize latency over HTTP (names form,
500 names); the time from a 1,000-pod burst (gated, as the webhook gates them) to the last
node the autoscaler process launched for it (its loop period 1 s, batching window 1 s);
and, in this process with the autoscaler's own caches, steady-state steps (p50/p99),
`existing_nodes` and the scale-down review alone.

Ratios are against the baseline of the same run. Targets (issue #16): <= 300 MB per
process and <= 0.25 x the dict caches; step p99 <= 100 ms; review <= 50 ms; burst <= 2 s
after the batching window.

Last, what the catalogs and price data add at each cloud's largest region (issue #30: <= 50
MB; bench/catalogmemory.py says how), also alone with --catalogs-only (no cluster).

Run: .venv/bin/python -m bench.scale [--nodes 5000] [--pods 50000] [--first 1000:10000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, config

from bench import catalogmemory
from gibbous.autoscaler.cloud.kwok import KwokCloudProvider
from gibbous.autoscaler.kube import KubeCluster
from gibbous.autoscaler.lifecycle import NodeLifecycle
from gibbous.autoscaler.loop import Autoscaler
from gibbous.catalogs import load_catalog
from gibbous.core import keys
from gibbous.core.lifecycle.disruption import review_scale_down
from gibbous.core.planning.scaleup import existing_nodes
from gibbous.core.settings.loader import build_config
from gibbous.devcluster.binaries import find_binaries
from gibbous.devcluster.controlplane import ControlPlane, free_port
from gibbous.kubecache import Informer

FIXTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "admissionreview_pod_create.json"
NAMESPACE = "bench"
BURST = "burst"
SETTINGS = {"scaleDown.unneededTime": "10h"}  # measure the review; never drain in a bench


def admin(plane: ControlPlane) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


def in_parallel(work: list[Any], function: Any, threads: int = 16) -> None:
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in concurrent.futures.as_completed([pool.submit(function, w) for w in work]):
            future.result()


def make_nodes(api: client.ApiClient, start: int, end: int) -> None:
    core = client.CoreV1Api(api)
    # Exactly full with ten fixture pods (2 CPU, 12Gi, 1 GPU each): a burst needs new nodes.
    allocatable = {"cpu": "20", "memory": "120Gi", "pods": "110", "nvidia.com/gpu": "10"}

    def one(index: int) -> None:
        name = f"bench-node-{index:05d}"
        core.create_node(
            {
                "metadata": {
                    "name": name,
                    "labels": {
                        keys.HOSTNAME: name,
                        keys.INSTANCE_TYPE: "p3.16xlarge",
                        keys.ZONE: "us-west-2a",
                        keys.ARCH: "amd64",
                        keys.CREATED_BY: keys.CREATED_BY_VALUE,
                        keys.PLACEMENT: "bin-pack",
                        keys.CAPACITY_TYPE: "on-demand",
                        keys.PRICE_PER_HOUR: "24.4800",
                    },
                },
                "spec": {"providerID": f"aws:///us-west-2a/i-{index:017x}"},
            }
        )
        core.patch_node_status(
            name,
            {
                "status": {
                    "allocatable": allocatable,
                    "capacity": allocatable,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                }
            },
        )

    in_parallel(list(range(start, end)), one)


def pod_body(
    index: int, node: str | None, template: dict[str, Any], namespace: str = NAMESPACE
) -> dict[str, Any]:
    body = copy.deepcopy(template)
    meta = body["metadata"]
    meta.pop("generateName", None)
    meta["name"] = f"llm-trainer-{index:06d}"
    meta["namespace"] = namespace
    if node:
        body["spec"]["nodeName"] = node
    return body


def make_pods(api: client.ApiClient, start: int, end: int, nodes: int) -> None:
    core = client.CoreV1Api(api)
    template = json.loads(FIXTURE.read_text())["request"]["object"]
    template.pop("status", None)
    in_parallel(
        list(range(start, end)),
        lambda i: core.create_namespaced_pod(
            NAMESPACE, pod_body(i, f"bench-node-{i % nodes:05d}", template)
        ),
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric(url: str, name: str, label: str) -> float:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return -1.0
    for line in text.splitlines():
        if line.startswith(f'{name}{{cache="{label}"}} '):
            return float(line.split()[1])
    return -1.0


def wait_for(probe: Any, timeout_s: float, what: str) -> float:
    """When `probe` first held (time.monotonic())."""
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return time.monotonic()


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


class Part:
    """One process under measurement."""

    def __init__(self, name: str, argv: list[str], logs: Path) -> None:
        self.name = name
        self.log = (logs / f"{name}.log").open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def measure_processes(plane: ControlPlane, nodes: int, pods: int, logs: Path) -> dict[str, Any]:
    """Start the autoscaler, the extender and the dict-cache baseline; their sync times and
    resident memory once their caches hold `nodes` nodes and `pods` pods."""
    kubeconfig = str(plane.kubeconfig)
    settings = [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={v}")]
    autoscaler_port, extender_port = free_port(), free_port()
    ready_file = logs / f"dict-ready-{pods}"
    parts = {
        "autoscaler": Part(
            "autoscaler",
            [
                sys.executable,
                "-m",
                "gibbous",
                "autoscaler",
                "--provider",
                "kwok",
                "--kubeconfig",
                kubeconfig,
                "--listen",
                f"127.0.0.1:{autoscaler_port}",
                "--no-leader-elect",
                "--log-level",
                "warning",
                *settings,
            ],
            logs,
        ),
        "extender": Part(
            "extender",
            [
                sys.executable,
                "-m",
                "gibbous",
                "extender",
                "--kubeconfig",
                kubeconfig,
                "--listen",
                f"127.0.0.1:{extender_port}",
                "--log-level",
                "warning",
            ],
            logs,
        ),
        "dict-caches": Part(
            "dict-caches",
            [
                sys.executable,
                "-m",
                "bench.scale",
                "--hold-dict-caches",
                kubeconfig,
                "--ready-file",
                str(ready_file),
            ],
            logs,
        ),
    }
    result: dict[str, Any] = {"nodes": nodes, "pods": pods}
    try:
        urls = {
            "autoscaler": f"http://127.0.0.1:{autoscaler_port}",
            "extender": f"http://127.0.0.1:{extender_port}",
        }
        probes = {
            "autoscaler": lambda: ready(urls["autoscaler"] + "/readyz"),
            "extender": lambda: ready(urls["extender"] + "/readyz"),
            "dict-caches": ready_file.exists,
        }
        ready_at: dict[str, float] = {}
        deadline = time.monotonic() + 900
        while len(ready_at) < len(probes):  # each process's own first ready moment
            for name, probe in probes.items():
                if name not in ready_at and probe():
                    ready_at[name] = time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready in 15 minutes: {set(probes) - set(ready_at)}")
            time.sleep(0.1)
        result["sync_s"] = {name: ready_at[name] - parts[name].started for name in parts}
        for name, prefix, label, expected in (
            ("autoscaler", "gibbous_autoscaler", "pods", pods),
            ("autoscaler", "gibbous_autoscaler", "nodes", nodes),
            ("extender", "gibbous_extender", "pods", pods),
            ("extender", "gibbous_extender", "nodes", nodes),
        ):
            url = urls[name] + "/metrics"
            wait_for(
                lambda u=url, m=f"{prefix}_cache_objects", c=label, e=expected: (
                    metric(u, m, c) >= e
                ),
                300,
                f"{name} {label} cache",
            )
        time.sleep(5)  # let the first steps and collections settle
        result["rss_mb"] = {name: rss_mb(part.process.pid) for name, part in parts.items()}
        result["extender_url"] = urls["extender"]
        result["parts"] = parts
        return result
    except BaseException:
        for part in parts.values():
            part.stop()
        raise


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def extender_latency(url: str, nodes: int, requests: int = 200) -> dict[str, float]:
    template = json.loads(FIXTURE.read_text())["request"]["object"]
    names = [f"bench-node-{i:05d}" for i in range(nodes)]
    out: dict[str, list[float]] = {"filter": [], "prioritize": []}
    for index in range(requests):
        pod = pod_body(10**6 + index, None, template)
        pod["metadata"]["uid"] = f"bench-uid-{index}"
        body = json.dumps(
            {
                "Pod": pod,
                "Nodes": None,
                "NodeNames": names[index % 10 :: max(1, nodes // 500)][:500],
            }
        ).encode()
        for verb in ("filter", "prioritize"):
            request = urllib.request.Request(
                f"{url}/{verb}", data=body, headers={"Content-Type": "application/json"}
            )
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=10) as reply:
                reply.read()
            out[verb].append((time.perf_counter() - started) * 1000)
    return {
        f"{verb}_{q}": percentile(values, p)
        for verb, values in out.items()
        for q, p in (("p50", 0.5), ("p99", 0.99))
    }


def burst_to_launches(api: client.ApiClient, burst: int) -> dict[str, float]:
    """A burst of gated pods (as the webhook gates them) against the running autoscaler
    process: from the last pod created to the last kwok node it launched (counted once no
    new node came for 5 s)."""
    core = client.CoreV1Api(api)
    template = json.loads(FIXTURE.read_text())["request"]["object"]
    template.pop("status", None)
    template["spec"]["schedulingGates"] = [{"name": keys.PROVISIONING_GATE}]
    for container in template["spec"]["containers"]:
        container["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"}}

    def launched() -> int:
        return len(core.list_node(label_selector="gibbous.dev/cluster-id").items)

    before = launched()
    in_parallel(
        list(range(burst)),
        lambda i: core.create_namespaced_pod(BURST, pod_body(i, None, template, BURST)),
    )
    created = time.monotonic()
    count, last_change = before, created
    while time.monotonic() - last_change < 5 or count == before:
        now_count = launched()
        if now_count != count:
            count, last_change = now_count, time.monotonic()
        if time.monotonic() - created > 300:
            raise RuntimeError("the burst got no nodes within 5 minutes")
        time.sleep(0.1)
    return {"burst_to_launches_s": last_change - created, "burst_launches": float(count - before)}


def clear_burst(api: client.ApiClient) -> None:
    """The burst's pods and nodes removed, so the in-process autoscaler measures a steady
    cluster, not a second planning of pods the process already launched for."""
    core = client.CoreV1Api(api)
    core.delete_collection_namespaced_pod(BURST)
    for node in core.list_node(label_selector="gibbous.dev/cluster-id").items:
        core.delete_node(node.metadata.name)
    wait_for(lambda: not core.list_namespaced_pod(BURST).items, 120, "burst pods gone")


def in_process(api: client.ApiClient, nodes: int) -> dict[str, float]:
    """Steps and the scale-down review, with the autoscaler's real caches."""
    cfg = build_config(dict(SETTINGS))
    cluster = KubeCluster(api)
    cluster.start()
    started = time.monotonic()
    cluster.wait_ready(900)
    out: dict[str, float] = {"in_process_sync_s": time.monotonic() - started}
    provider = KwokCloudProvider(api, load_catalog(None, "aws", "us-west-2"), cfg, time.time)
    autoscaler = Autoscaler(cfg, provider, cluster, clock=time.time)
    lifecycle = NodeLifecycle(autoscaler, cluster, clock=time.time)
    print(f"in-process caches synced ({out['in_process_sync_s']:.1f}s)", flush=True)
    started = time.perf_counter()
    autoscaler.step()
    out["first_step_ms"] = (time.perf_counter() - started) * 1000
    steps, reviews = [], []
    for _ in range(60):
        started = time.perf_counter()
        autoscaler.step()
        steps.append((time.perf_counter() - started) * 1000)
    lifecycle.step()
    node_objects = cluster.nodes()
    bound = autoscaler.refresh_pods()
    existing_ms = []
    for _ in range(20):
        started = time.perf_counter()
        existing = existing_nodes(
            node_objects,
            (),
            autoscaler.offers_by_key,
            cfg,
            view_of=autoscaler.views.view,
            bound=bound,
        )
        existing_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        review_scale_down(
            node_objects,
            bound,
            existing,
            autoscaler.pending,
            cfg,
            now=time.time(),
            unneeded_since={},
            draining=frozenset(),
            view_of=autoscaler.views.view,
        )
        reviews.append((time.perf_counter() - started) * 1000)
    out |= {
        "step_p50_ms": percentile(steps, 0.5),
        "step_p99_ms": percentile(steps, 0.99),
        "review_p50_ms": percentile(reviews, 0.5),
        "review_max_ms": max(reviews),
        "existing_nodes_p50_ms": percentile(existing_ms, 0.5),
    }
    print("steps and reviews timed", flush=True)
    cluster.stop()
    return out


def hold_dict_caches(kubeconfig: str, ready_file: str) -> None:
    """The baseline: pods and nodes cached as the API's JSON dicts, as before #16."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    core = client.CoreV1Api(client.ApiClient(configuration))
    informers = [
        Informer(core.list_pod_for_all_namespaces, name="pods"),
        Informer(core.list_node, name="nodes"),
    ]
    for informer in informers:
        informer.start()
    for informer in informers:
        informer.wait_ready(900)
    Path(ready_file).write_text("ready")
    threading.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=50000)
    parser.add_argument("--first", default="1000:10000", help="NODES:PODS of the first size")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--dir", help="control plane directory (default: a temporary one)")
    parser.add_argument(
        "--catalogs-only",
        action="store_true",
        help="only what the catalogs add at each cloud's largest region (bench.catalogmemory)",
    )
    parser.add_argument("--hold-dict-caches", metavar="KUBECONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.catalogs_only:
        catalogmemory.report(catalogmemory.measure_all())
        return
    if args.hold_dict_caches:
        hold_dict_caches(args.hold_dict_caches, args.ready_file)
        return
    directory = Path(args.dir or tempfile.mkdtemp(prefix="gibbous-scale-"))
    plane = ControlPlane(find_binaries(release="current"), directory / "plane")
    plane.start(controller_manager=False)
    api = admin(plane)
    core = client.CoreV1Api(api)
    for namespace in (NAMESPACE, BURST):
        core.create_namespace({"metadata": {"name": namespace}})
        # No controller manager runs here to make it; pods need their service account.
        core.create_namespaced_service_account(namespace, {"metadata": {"name": "default"}})
    first_nodes, first_pods = (int(x) for x in args.first.split(":"))
    results = []
    made_nodes = made_pods = 0
    try:
        for nodes, pods in ((first_nodes, first_pods), (args.nodes, args.pods)):
            started = time.monotonic()
            make_nodes(api, made_nodes, nodes)
            make_pods(api, made_pods, pods, nodes)
            made_nodes, made_pods = nodes, pods
            print(
                f"{nodes} nodes / {pods} pods created ({time.monotonic() - started:.0f}s)",
                flush=True,
            )
            measured = measure_processes(plane, nodes, pods, directory)
            parts = measured.pop("parts")
            print(f"measured processes: {measured['rss_mb']}", flush=True)
            try:
                if nodes == args.nodes:
                    # The baseline is not part of a deployment: it has been measured, and
                    # its watches must not take the API server's time from what is timed.
                    parts.pop("dict-caches").stop()
                    measured |= extender_latency(measured["extender_url"], nodes)
                    print("measured the extender's latency", flush=True)
                    measured |= burst_to_launches(api, args.burst)
                    print("measured the burst", flush=True)
            finally:
                for part in parts.values():
                    part.stop()
            results.append(measured)
            print(json.dumps(measured, default=str), flush=True)
        clear_burst(api)
        results[-1] |= in_process(api, args.nodes)
    finally:
        plane.stop()
    report(results)
    # Issue #30: the catalogs and price data add at most 50 MB at the largest region.
    catalogmemory.report(catalogmemory.measure_all())


def report(results: list[dict[str, Any]]) -> None:
    print()
    print(f"{'size':>15} {'process':>12} {'sync s':>7} {'RSS MB':>8} {'x dict caches':>14}")
    for result in results:
        base = result["rss_mb"]["dict-caches"]
        for name in ("autoscaler", "extender", "dict-caches"):
            print(
                f"{result['nodes']:>6}/{result['pods']:<8} {name:>12} {result['sync_s'][name]:>7.1f} "
                f"{result['rss_mb'][name]:>8.0f} {result['rss_mb'][name] / base:>14.2f}"
            )
    last = results[-1]
    print()
    for key in (
        "in_process_sync_s",
        "first_step_ms",
        "step_p50_ms",
        "step_p99_ms",
        "review_p50_ms",
        "review_max_ms",
        "existing_nodes_p50_ms",
        "burst_to_launches_s",
        "burst_launches",
        "filter_p50",
        "filter_p99",
        "prioritize_p50",
        "prioritize_p99",
    ):
        if key in last:
            print(f"{key:>22} {last[key]:.2f}")


if __name__ == "__main__":
    main()
