"""Memory of the webhook and the extender under the attacks of issue #32
(`python -m bench.hostile`).

The real processes, started as the chart starts them (`gibbous webhook` over HTTPS with a
serving pair on files; `gibbous extender` in plain HTTP with its node and pod caches on a
control plane of the current release), each afresh per attack, measured from outside:
resident memory before the attack (after a few ordinary requests), its peak while the
attack runs (sampled every 5 ms, and the kernel's high-water mark `VmHWM`, reset before
the attack through `/proc/PID/clear_refs`), and after it (3 s later). Attacks:

* webhook, namespaces: --namespace-requests (1,100) reviews, each with a distinct 1 MiB
  `request.namespace`, over /mutate, /validate and /mutate-opted-in, 8 connections;
* webhook, headers: one request with a 16 MiB header, then 8 in parallel with 64 MiB each;
* extender, node-list flood: 4 callers posting 19,000-node NodeLists to /filter, then 8
  posting 15,000-node NodeLists (--rounds each), while a victim asks /healthz every 50 ms.

Reported: peak and after against the chart's memory limits (charts/gibbous/values.yaml:
webhook 256 MiB, extender 1 GiB), bytes per request ((peak - before) / requests and
(after - before) / requests), and the replies' status codes. Before the fixes of issue #32
the namespace attack took the webhook from 45 MB to 3.2 GB, the header attack to 539 MB
(extender 628 MB), and eight 15k-node requests took the extender to 1.2 GB (757 MB after).

Run: .venv/bin/python -m bench.hostile [--repeat 3]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import copy
import datetime
import functools
import json
import os
import random
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from bench.extender import nodes as realistic_nodes
from bench.extender import pod as realistic_pod
from gibbous.certs.authority import generate_ca, generate_serving, write_bundle
from gibbous.devcluster.binaries import find_binaries
from gibbous.devcluster.controlplane import ControlPlane, free_port

FIXTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "admissionreview_pod_create.json"
VALUES = Path(__file__).parents[1] / "charts" / "gibbous" / "values.yaml"
MIB = 1024 * 1024


def chart_memory_limits() -> dict[str, int]:
    """The `resources.limits.memory` of the webhook and the extender in the chart's values."""
    values = yaml.safe_load(VALUES.read_text())
    units = {"Mi": MIB, "Gi": 1024 * MIB}
    limits = {}
    for component in ("webhook", "extender"):
        text = values[component]["resources"]["limits"]["memory"]
        limits[component] = int(text[:-2]) * units[text[-2:]]
    return limits


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for {pid}")


class Process:
    """A Gibbous server process, its memory sampled from outside."""

    def __init__(self, argv: list[str], log: Path, ready_url: str, verify: Any = True) -> None:
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(ready_url, verify=verify, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{argv[3]} did not become ready; see {log}")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return status_kb(self.pid, "VmRSS")

    @contextmanager
    def peak(self) -> Iterator[dict[str, int]]:
        """The highest RSS while the block runs: sampled, and the kernel's high-water mark."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
        out = {"sampled": self.rss()}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.005):
                out["sampled"] = max(out["sampled"], self.rss())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield out
        finally:
            done.set()
            sampler.join()
            out["hwm"] = status_kb(self.pid, "VmHWM")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def attacked(process: Process, attack: Callable[[], collections.Counter[str]]) -> dict[str, Any]:
    before = process.rss()
    with process.peak() as peak:
        started = time.monotonic()
        replies = attack()
        seconds = time.monotonic() - started
    time.sleep(3)
    alive = process.process.poll() is None
    return {
        "before": before,
        "peak": max(peak["sampled"], peak["hwm"]),
        "after": process.rss() if alive else -1,
        "seconds": seconds,
        "replies": dict(replies),
        "alive": alive,
    }


# --- the webhook ---------------------------------------------------------------------------


def serving_pair(directory: Path) -> dict[str, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca = generate_ca(common_name="bench-hostile", days=2, now=now)
    serving = generate_serving(
        ca, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=1, now=now
    )
    return write_bundle(directory / "certs", ca, serving)


def start_webhook(directory: Path, pair: dict[str, Path]) -> tuple[Process, str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gibbous",
        "webhook",
        f"--listen=127.0.0.1:{port}",
        f"--tls-cert={pair['tls.crt']}",
        f"--tls-key={pair['tls.key']}",
        "--scheduling-gates=on",  # no API server to ask: the chart's on a current cluster
        "--log-level=warning",
    ]
    url = f"https://127.0.0.1:{port}"
    process = Process(argv, directory / "webhook.log", url + "/readyz", verify=str(pair["ca.crt"]))
    review = FIXTURE.read_bytes()
    with httpx.Client(base_url=url, verify=str(pair["ca.crt"])) as warm:
        for path in ("/mutate", "/validate", "/mutate-opted-in"):
            warm.post(path, content=review).raise_for_status()
    return process, url


def namespace_attack(url: str, ca: Path, requests: int) -> collections.Counter[str]:
    """Reviews that differ only in a 1 MiB `request.namespace` of their own."""
    template = json.loads(FIXTURE.read_text())
    paths = ("/mutate", "/validate", "/mutate-opted-in")
    replies: collections.Counter[str] = collections.Counter()
    local = threading.local()

    def one(index: int) -> str:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, verify=str(ca), timeout=60)
        review = copy.deepcopy(template)
        review["request"]["uid"] = f"attack-{index}"
        review["request"]["namespace"] = f"{index:08d}" + "n" * (MIB - 8)
        reply = local.client.post(paths[index % len(paths)], content=orjson.dumps(review))
        return str(reply.status_code)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies.update(pool.map(one, range(requests)))
    return replies


def big_header(port: int, ca: Path, size: int) -> str:
    """One request whose header is `size` bytes: the status line of the answer, or how the
    connection ended."""
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=60) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        head = b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: "
        chunk = b"h" * MIB
        try:
            tls.sendall(head)
            for _ in range(size // MIB):
                tls.sendall(chunk)
            tls.sendall(b"\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass  # refused part-way: read what the server answered before closing
        try:
            answer = tls.recv(4096)
        except OSError as error:
            return f"closed ({type(error).__name__})"
        return answer.split(b"\r\n", 1)[0].decode() or "closed"


def header_attack(url: str, ca: Path) -> collections.Counter[str]:
    port = int(url.rsplit(":", 1)[1])
    replies: collections.Counter[str] = collections.Counter()
    replies[big_header(port, ca, 16 * MIB)] += 1
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies.update(pool.map(lambda _: big_header(port, ca, 64 * MIB), range(8)))
    return replies


# --- the extender --------------------------------------------------------------------------


def start_extender(directory: Path, plane: ControlPlane) -> tuple[Process, str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gibbous",
        "extender",
        f"--kubeconfig={plane.kubeconfig}",
        f"--listen=127.0.0.1:{port}",
        "--log-level=warning",
    ]
    url = f"http://127.0.0.1:{port}"
    return Process(argv, directory / "extender.log", url + "/readyz"), url


def node_list_bodies(count: int, callers: int) -> list[bytes]:
    rng = random.Random(count)
    cluster = realistic_nodes(count, seed=count)
    return [
        orjson.dumps({"Pod": realistic_pod(i, rng), "Nodes": {"metadata": {}, "items": cluster}})
        for i in range(callers)
    ]


def flood(
    url: str, bodies: list[bytes], rounds: int, probes: list[float]
) -> collections.Counter[str]:
    """Each body posted by a caller of its own, `rounds` times, while a victim probes."""
    replies: collections.Counter[str] = collections.Counter()
    done = threading.Event()

    def victim() -> None:
        with httpx.Client(base_url=url, timeout=30) as own:
            while not done.wait(0.05):
                started = time.perf_counter()
                own.get("/healthz").raise_for_status()
                probes.append((time.perf_counter() - started) * 1000)

    def caller(body: bytes) -> list[str]:
        with httpx.Client(base_url=url, timeout=300) as own:
            return [
                str(own.post("/filter" if n % 2 == 0 else "/prioritize", content=body).status_code)
                for n in range(rounds)
            ]

    prober = threading.Thread(target=victim, daemon=True)
    prober.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
            for codes in pool.map(caller, bodies):
                replies.update(codes)
    finally:
        done.set()
        prober.join()
    return replies


# --- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each attack")
    parser.add_argument("--namespace-requests", type=int, default=1100)
    parser.add_argument("--rounds", type=int, default=3, help="requests per flood caller")
    parser.add_argument("--only", choices=("webhook", "extender"), help="one component")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="gibbous-hostile-"))
    limits = chart_memory_limits()
    rows: list[tuple[str, str, int, dict[str, Any]]] = []
    if args.only != "extender":
        pair = serving_pair(directory)
        for run in range(args.repeat):
            attacks: list[tuple[str, Callable[[str], collections.Counter[str]], int]] = [
                (
                    f"{args.namespace_requests:,} x 1 MiB namespace",
                    functools.partial(
                        namespace_attack, ca=pair["ca.crt"], requests=args.namespace_requests
                    ),
                    args.namespace_requests,
                ),
                (
                    "16 MiB header, then 8 x 64 MiB",
                    functools.partial(header_attack, ca=pair["ca.crt"]),
                    9,
                ),
            ]
            for name, attack, requests in attacks:
                process, url = start_webhook(directory, pair)
                try:
                    result = attacked(process, functools.partial(attack, url))
                finally:
                    process.stop()
                rows.append(("webhook", name, requests, result))
                print(f"run {run + 1} webhook {name}: {json.dumps(result)}", flush=True)
    if args.only != "webhook":
        plane = ControlPlane(find_binaries(release="current"), directory / "plane")
        plane.start(controller_manager=False)
        try:
            floods = [(19_000, 4), (15_000, 8)]
            bodies = {size: node_list_bodies(size, callers) for size, callers in floods}
            for run in range(args.repeat):
                for size, callers in floods:
                    process, url = start_extender(directory, plane)
                    probes: list[float] = []
                    try:
                        result = attacked(
                            process,
                            functools.partial(flood, url, bodies[size], args.rounds, probes),
                        )
                    finally:
                        process.stop()
                    result["probe_max_ms"] = max(probes) if probes else float("nan")
                    result["probe_p50_ms"] = statistics.median(probes) if probes else float("nan")
                    result["body_mb"] = len(bodies[size][0]) / MIB
                    name = f"{callers} callers x {size:,}-node lists"
                    rows.append(("extender", name, callers * args.rounds, result))
                    print(f"run {run + 1} extender {name}: {json.dumps(result)}", flush=True)
        finally:
            plane.stop()
    report(rows, limits)


def report(rows: list[tuple[str, str, int, dict[str, Any]]], limits: dict[str, int]) -> None:
    grouped: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for component, name, requests, result in rows:
        grouped.setdefault((component, name, requests), []).append(result)
    print()
    print(
        "| component (limit) | attack | requests | before MB | peak MB | after MB | "
        "peak / limit | peak bytes / request | kept bytes / request | replies |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")

    def span(values: list[float], fmt: str) -> str:
        low, high = min(values), max(values)
        return (
            format(low, fmt)
            if format(low, fmt) == format(high, fmt)
            else (f"{format(low, fmt)}-{format(high, fmt)}")
        )

    for (component, name, requests), results in grouped.items():
        limit = limits[component]
        replies: collections.Counter[str] = collections.Counter()
        for result in results:
            replies.update(result["replies"])
        print(
            f"| {component} ({limit // MIB} MiB) | {name} | {requests:,} | "
            f"{span([r['before'] / 1e6 for r in results], '.0f')} | "
            f"{span([r['peak'] / 1e6 for r in results], '.0f')} | "
            f"{span([r['after'] / 1e6 for r in results], '.0f')} | "
            f"{span([r['peak'] / limit for r in results], '.2f')} | "
            f"{span([(r['peak'] - r['before']) / requests for r in results], ',.0f')} | "
            f"{span([(r['after'] - r['before']) / requests for r in results], ',.0f')} | "
            + ", ".join(f"{code}: {count}" for code, count in sorted(replies.items()))
            + " |"
        )
    for (component, name, _), results in grouped.items():
        if component == "extender":
            print(
                f"{name}: body {results[0]['body_mb']:.1f} MB, /healthz p50 "
                f"{span([r['probe_p50_ms'] for r in results], '.1f')} ms, max "
                f"{span([r['probe_max_ms'] for r in results], '.0f')} ms, "
                f"attack {span([r['seconds'] for r in results], '.0f')} s"
            )
    over = [
        (component, name)
        for component, name, _, result in rows
        if result["peak"] > limits[component] or not result["alive"]
    ]
    if over:
        print(f"\nOVER THE CHART'S LIMIT (or killed): {over}")


if __name__ == "__main__":
    main()
