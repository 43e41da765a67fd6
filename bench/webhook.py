"""Webhook latency and throughput over HTTPS keep-alive, against a null endpoint on the same stack.

Each server (Gibbous /mutate, and a null Starlette endpoint that returns a fixed
`allowed: true` review) runs in its own process pinned to core 0 with the same
uvicorn TLS stack; the load generator runs pinned to core 1. Runs alternate
(null, gibbous, null, gibbous, ...) so both see the same machine state.

Reported: max throughput (closed loop, 16 connections) and p50/p99 latency at a
fixed open-loop arrival rate (default 500 req/s), with gibbous/null ratios, for two
mixes: `template` cycles four pods as the replicas of four workloads would arrive
(equal shapes: the webhook decides each once), `unique` gives every request a
workload of its own (every request decided afresh).

Run: .venv/bin/python -m bench.webhook [--rate 500] [--seconds 5] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime
import json
import multiprocessing
import os
import ssl
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gibbous.certs.authority import generate_ca, generate_serving, write_bundle
from gibbous.core.admission.mutation import ServerFeatures
from gibbous.core.settings.loader import build_config
from gibbous.serving import Listen, TLSServer
from gibbous.webhook.app import create_app

FIXTURE = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "admissionreview_pod_create.json"
)


def corpus() -> list[bytes]:
    """GPU pod (upstream fixture), small managed pod, spot pod, unmanaged pod."""
    base = json.loads(FIXTURE.read_text())
    bodies = [base]
    small = copy.deepcopy(base)
    small["request"]["object"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "250m", "memory": "256Mi"}
    }
    bodies.append(small)
    spot = copy.deepcopy(small)
    spot["request"]["object"]["metadata"]["annotations"]["node.elotl.co/instance-offerings"] = (
        "spot,on-demand"
    )
    bodies.append(spot)
    unmanaged = copy.deepcopy(small)
    del unmanaged["request"]["object"]["metadata"]["labels"]["elotl-luna"]
    bodies.append(unmanaged)
    return [json.dumps(b).encode() for b in bodies]


def unique_corpus(count: int = 20_000) -> list[bytes]:
    """The same four pods, each request of a workload of its own (its `app` label), so
    no two share a shape and every request misses the webhook's decision memo (more
    distinct shapes than it holds, cycled in order)."""
    out = []
    for index, body in enumerate(json.loads(b) for b in corpus() * (count // 4)):
        body["request"]["object"]["metadata"]["labels"]["app"] = f"workload-{index}"
        out.append(json.dumps(body).encode())
    return out


def null_app() -> Starlette:
    reply = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "x", "allowed": True},
        }
    ).encode()

    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(reply, media_type="application/json")

    return Starlette(routes=[Route("/mutate", endpoint, methods=["POST"])])


def serve(kind: str, port: int, cert: str, key: str) -> None:
    os.sched_setaffinity(0, {0})
    if kind == "null":
        app: Any = null_app()
    else:
        app = create_app(
            build_config({"provisioningGate": True, "cloudProvider": "azure"}), ServerFeatures(True)
        )
    TLSServer(app, Listen("127.0.0.1", port), cert, key, log_level="error").run()


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: the generator must not be the bottleneck."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext) -> Connection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        return cls(reader, writer)

    async def post(self, body: bytes) -> int:
        head = (
            f"POST /mutate?timeout=10s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, */*\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        status = int(headers.split(b" ", 2)[1])
        length = 0
        for line in headers.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def closed_loop(
    port: int, context: ssl.SSLContext, bodies: list[bytes], seconds: float, connections: int
) -> float:
    pool = [await Connection.open(port, context) for _ in range(connections)]
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        # One sequence over all connections: every body is sent once per pass.
        nonlocal done
        while time.perf_counter() < deadline:
            body = bodies[done % len(bodies)]
            done += 1
            if await pool[index].post(body) != 200:
                raise SystemExit("invalid run: non-200 reply")

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(connections)))
    elapsed = time.perf_counter() - start
    for connection in pool:
        connection.close()
    return done / elapsed


async def open_loop(
    port: int, context: ssl.SSLContext, bodies: list[bytes], rate: float, seconds: float
) -> list[float]:
    """Fixed arrival rate; each request takes an idle connection (opened ahead), so queueing shows."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(32):
        idle.put_nowait(await Connection.open(port, context))
    latencies: list[float] = []

    async def one(body: bytes, scheduled: float) -> None:
        connection = await idle.get()
        if await connection.post(body) != 200:
            raise SystemExit("invalid run: non-200 reply")
        latencies.append(time.perf_counter() - scheduled)  # from the intended send time
        idle.put_nowait(connection)

    tasks = []
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        target = start + n / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(bodies[n % len(bodies)], target)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return latencies


def run(coroutine: Any) -> Any:
    return uvloop.run(coroutine)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    tmp = Path(tempfile.mkdtemp(prefix="gibbous-bench-"))
    now = datetime.datetime.now(datetime.UTC)
    ca = generate_ca(common_name="bench", days=2, now=now)
    paths = write_bundle(
        tmp,
        ca,
        generate_serving(ca, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=1, now=now),
    )
    context = ssl.create_default_context(cafile=str(paths["ca.crt"]))
    mixes = {"template": corpus(), "unique": unique_corpus()}
    bodies = mixes["template"]
    ports = {"null": 18701, "gibbous": 18702}
    processes = {
        kind: multiprocessing.Process(
            target=serve,
            args=(kind, port, str(paths["tls.crt"]), str(paths["tls.key"])),
            daemon=True,
        )
        for kind, port in ports.items()
    }
    for process in processes.values():
        process.start()
    for port in ports.values():
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.post(
                    f"https://127.0.0.1:{port}/mutate", content=bodies[0], verify=context, timeout=1
                )
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start") from None
                time.sleep(0.1)
    results: dict[tuple[str, str], dict[str, list[float]]] = {
        (mix, kind): {"rps": [], "p50": [], "p99": []} for mix in mixes for kind in ports
    }
    for _ in range(args.rounds):
        for mix, mix_bodies in mixes.items():
            for kind, port in ports.items():
                result = results[mix, kind]
                result["rps"].append(run(closed_loop(port, context, mix_bodies, args.seconds, 16)))
                latencies = run(open_loop(port, context, mix_bodies, args.rate, args.seconds))
                result["p50"].append(percentile(latencies, 0.50) * 1000)
                result["p99"].append(percentile(latencies, 0.99) * 1000)
    for process in processes.values():
        process.terminate()
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in results.items()}
    rate = str(int(args.rate))
    print(
        f"{'mix':<9} {'endpoint':<10} {'max req/s':>10} {'p50 ms @' + rate:>12} {'p99 ms @' + rate:>12}"
    )
    for mix in mixes:
        for kind in ports:
            m = med[mix, kind]
            print(f"{mix:<9} {kind:<10} {m['rps']:>10.0f} {m['p50']:>12.2f} {m['p99']:>12.2f}")
    for mix in mixes:
        # Ratios within a round (null and gibbous measured back to back), then the median:
        # the VM's speed drifts between rounds more than between neighbours.
        paired = [
            statistics.median(
                ours / null
                for ours, null in zip(
                    results[mix, "gibbous"][metric], results[mix, "null"][metric], strict=True
                )
            )
            for metric in ("rps", "p50", "p99")
        ]
        print(
            f"{mix}: gibbous/null throughput {paired[0]:.2f}, p50 {paired[1]:.2f}, "
            f"p99 {paired[2]:.2f} (median of per-round ratios)"
        )


if __name__ == "__main__":
    main()
