"""etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, with their own PKI.

Authentication is a static token (user `gibbous-admin`, group `system:masters`);
authorization is RBAC. There are no kubelets: the node-lifecycle controller is
disabled, because it would taint and evict every Node whose kubelet never reports
(the `kwok` provider keeps Node status fresh instead), and the endpoint reconciler
is off (loopback addresses are not valid endpoints). The controller manager turns
Deployments into ReplicaSets and Pods, creates default ServiceAccounts and runs
garbage collection.
"""

from __future__ import annotations

import datetime
import json
import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gibbous.certs.authority import generate_ca, generate_client, generate_serving, write_private
from gibbous.devcluster.binaries import Binaries

ADMIN_USER = "gibbous-admin"
FRONT_PROXY_CLIENT = "front-proxy-client"


@dataclass(frozen=True)
class ExtenderTLS:
    """The extender's serving pair and the CA its clients' certificates must come from
    (`gibbous extender --tls-cert --tls-key --tls-client-ca`), and a client pair of that
    CA for the schedulers that call it. The one CA also signed the serving certificate."""

    cert: Path
    key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path

    def extender_flags(self) -> list[str]:
        return [
            f"--tls-cert={self.cert}",
            f"--tls-key={self.key}",
            f"--tls-client-ca={self.client_ca}",
        ]

    def scheduler_fields(self) -> dict[str, Any]:
        """kube-scheduler's Extender fields (enableHTTPS, tlsConfig; the same in v1 and
        v1beta1): its client pair, and the CA it checks the extender's certificate with."""
        return {
            "enableHTTPS": True,
            "tlsConfig": {
                "certFile": str(self.client_cert),
                "keyFile": str(self.client_key),
                "caFile": str(self.client_ca),
            },
        }

    def files_by_secret_key(self) -> dict[str, Path]:
        """The scheduler's files by the key of the client Secret that holds them in a
        cluster (kubernetes.io/tls: tls.crt, tls.key; ca.crt)."""
        return {"tls.crt": self.client_cert, "tls.key": self.client_key, "ca.crt": self.client_ca}

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.client_ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


class ControlPlaneError(RuntimeError):
    pass


T = TypeVar("T")


def start_over_when_exited(
    start: Callable[[], T],
    exited: Callable[[], bool],
    *,
    clean_up: Callable[[], None] = lambda: None,
    attempts: int = 3,
) -> T:
    """`start()`, again (after `clean_up()`) while it fails because a process it spawned
    exited at start. A port found free can be taken before the child binds it (an outgoing
    connection may get it); the child then exits, and new ports are chosen on the next try.
    A failure with every process still running (a hang, a bad flag) is raised at once."""
    for attempt in range(attempts):
        try:
            return start()
        except ControlPlaneError:
            gone = exited()
            clean_up()
            if not gone or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(
    request: urllib.request.Request | str,
    *,
    context: ssl.SSLContext | None,
    timeout_s: float,
    processes: Mapping[str, subprocess.Popen[bytes]],
    logs: Path,
) -> None:
    """Poll `request` until it answers 200; fail at once, with the end of its log, when one
    of `processes` exits (their logs are `logs/<name>.log`)."""
    url = request.full_url if isinstance(request, urllib.request.Request) else request
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                tail = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"{name} exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(request, context=context, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
        time.sleep(0.25)
    raise ControlPlaneError(f"{url} not healthy after {timeout_s:.0f}s ({last})")


@dataclass
class ControlPlane:
    binaries: Binaries
    directory: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_port: int = 0
    etcd_port: int = 0
    token: str = ""

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def front_proxy_ca_file(self) -> Path:
        """The CA of the API server's client certificate when it proxies to aggregated APIs."""
        return self.directory / "pki" / "front-proxy-ca.crt"

    @property
    def ca_file(self) -> Path:
        return self.directory / "pki" / "ca.crt"

    def start(self, *, controller_manager: bool = True, timeout_s: float = 90.0) -> None:
        start_over_when_exited(
            lambda: self._start(controller_manager=controller_manager, timeout_s=timeout_s),
            lambda: any(process.poll() is not None for process in self.processes.values()),
            clean_up=self.stop,
        )

    def _start(self, *, controller_manager: bool, timeout_s: float) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        version = self.binaries.version()
        self._write_pki()
        self.etcd_port = free_port()
        self.api_port = free_port()
        self.spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{free_port()}",
                "--log-level=warn",
            ],
        )
        pki = self.directory / "pki"
        apiserver = [
            str(self.binaries.apiserver),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={pki / 'sa.key'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            # What GKE and EKS enable: pods asking for nvidia.com/gpu tolerate the
            # `nvidia.com/gpu` taint GPU nodes carry (GKE's node agent puts it on).
            "--enable-admission-plugins=ExtendedResourceToleration",
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            # Aggregated APIs are reached at their Endpoints' addresses: no kube-proxy here
            # to route a Service's cluster IP.
            "--enable-aggregator-routing=true",
        ]
        if version < (1, 24):
            apiserver.append("--insecure-port=0")
        self.spawn("kube-apiserver", apiserver)
        self._write_kubeconfig()
        self._wait_ready(timeout_s)
        if controller_manager:
            manager = [
                str(self.binaries.controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                "--controllers=*,-nodelifecycle",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--profiling=false",
            ]
            if version < (1, 24):
                manager.append("--port=0")
            self.spawn("kube-controller-manager", manager)
        (self.directory / "state.json").write_text(
            json.dumps(
                {"pids": {name: p.pid for name, p in self.processes.items()}, "server": self.server}
            )
        )

    def start_scheduler(
        self,
        *,
        scheduler_name: str,
        extender_url: str,
        weight: int = 5,
        configuration: dict[str, Any] | None = None,
        profiles: list[str] | None = None,
        lease: tuple[str, str] | None = None,
        extender: bool = True,
    ) -> None:
        """A kube-scheduler whose profile `scheduler_name` calls the extender at `extender_url`
        (nodeCacheCapable, ignorable). Config v1beta1 for 1.19-1.22 binaries, v1 after.
        A given `configuration` (e.g. the one the manifests ship) is used with its
        extender URL, client connection and leader election adapted to this plane. With
        `lease` (namespace, name) the scheduler leads through that Lease, as in a real
        cluster; without `extender` it calls none (a plain default scheduler). An https
        `extender_url` is called with the plane's extender client pair (`extender_tls`)."""
        api_version = (
            "kubescheduler.config.k8s.io/v1beta1"
            if self.binaries.version() < (1, 23)
            else "kubescheduler.config.k8s.io/v1"
        )
        election: dict[str, Any] = (
            {
                "leaderElect": True,
                "resourceNamespace": lease[0],
                "resourceName": lease[1],
                "leaseDuration": "15s",
                "renewDeadline": "10s",
                "retryPeriod": "2s",
            }
            if lease
            else {"leaderElect": False}
        )
        config: dict[str, Any] = {
            "apiVersion": api_version,
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfig)},
            "leaderElection": election,
            "profiles": [{"schedulerName": name} for name in profiles or [scheduler_name]],
            "extenders": [
                {
                    "urlPrefix": extender_url,
                    "filterVerb": "filter",
                    "prioritizeVerb": "prioritize",
                    "weight": weight,
                    "nodeCacheCapable": True,
                    "ignorable": True,
                    "httpTimeout": "2s",
                }
            ]
            if extender
            else [],
        }
        if configuration is not None:
            config = {
                **configuration,
                "clientConnection": {"kubeconfig": str(self.kubeconfig)},
                "leaderElection": election,
                "extenders": [
                    {**e, "urlPrefix": extender_url} for e in configuration.get("extenders") or []
                ],
            }
        for entry in config["extenders"]:
            shipped = entry.pop("tlsConfig", None)
            entry.pop("enableHTTPS", None)
            if extender_url.startswith("https://"):
                entry.update(self.extender_tls.scheduler_fields())
                if shipped:
                    # The given configuration's own fields, each naming this plane's file
                    # of the same Secret key: kube-scheduler reads the field names as shipped.
                    ours = self.extender_tls.files_by_secret_key()
                    entry["tlsConfig"] = {
                        field: str(ours[Path(path).name]) for field, path in shipped.items()
                    }
        if api_version.endswith("v1beta1"):
            # With --config, 1.20 ignores --port and serves insecure health and metrics on
            # 0.0.0.0:10251, so a second scheduler could not start; give each its own port.
            port = free_port()
            config["healthzBindAddress"] = f"127.0.0.1:{port}"
            config["metricsBindAddress"] = f"127.0.0.1:{port}"
        path = self.directory / f"scheduler-{scheduler_name}.yaml"
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        argv = [
            str(self.binaries.scheduler),
            f"--config={path}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
        ]
        if self.binaries.version() < (1, 23):
            argv.append("--port=0")
        self.spawn(f"kube-scheduler-{scheduler_name}", argv)

    def spawn(self, name: str, argv: list[str]) -> None:
        # The child gets its own copy of the descriptor; ours is closed at once.
        with (self.directory / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _write_pki(self) -> None:
        pki = self.directory / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca = generate_ca(common_name="gibbous-dev-cluster-ca", days=30, now=now)
        names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
        serving = generate_serving(
            ca, dns_names=names, ip_addresses=["127.0.0.1", "10.96.0.1"], days=30, now=now
        )
        (pki / "ca.crt").write_bytes(ca.cert_pem)
        write_private(pki / "ca.key", ca.key_pem)
        (pki / "apiserver.crt").write_bytes(serving.cert_pem)
        write_private(pki / "apiserver.key", serving.key_pem)
        sa_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        write_private(pki / "sa.key", sa_key)
        # The aggregation layer: the API server proxies to aggregated APIs (the dev
        # cluster's metrics.k8s.io) as `front-proxy-client`, a client certificate of its
        # own CA, which those servers check.
        front_proxy_ca = generate_ca(common_name="gibbous-dev-front-proxy-ca", days=30, now=now)
        front_proxy = generate_client(
            front_proxy_ca, common_name=FRONT_PROXY_CLIENT, days=30, now=now
        )
        (pki / "front-proxy-ca.crt").write_bytes(front_proxy_ca.cert_pem)
        (pki / "front-proxy-client.crt").write_bytes(front_proxy.cert_pem)
        write_private(pki / "front-proxy-client.key", front_proxy.key_pem)
        # The extender's mutual TLS: one CA signs its serving certificate and the
        # schedulers' client certificate (kube-scheduler's extender tlsConfig).
        extender_ca = generate_ca(common_name="gibbous-dev-extender-ca", days=30, now=now)
        extender = generate_serving(
            extender_ca, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=30, now=now
        )
        scheduler = generate_client(extender_ca, common_name="gibbous-scheduler", days=30, now=now)
        (pki / "extender-ca.crt").write_bytes(extender_ca.cert_pem)
        (pki / "extender.crt").write_bytes(extender.cert_pem)
        write_private(pki / "extender.key", extender.key_pem)
        (pki / "extender-client.crt").write_bytes(scheduler.cert_pem)
        write_private(pki / "extender-client.key", scheduler.key_pem)
        self.token = secrets.token_hex(24)
        write_private(
            pki / "tokens.csv",
            f'{self.token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n'.encode(),
        )

    @property
    def extender_tls(self) -> ExtenderTLS:
        """Files of the extender's mutual TLS (written with the plane's PKI)."""
        pki = self.directory / "pki"
        return ExtenderTLS(
            cert=pki / "extender.crt",
            key=pki / "extender.key",
            client_ca=pki / "extender-ca.crt",
            client_cert=pki / "extender-client.crt",
            client_key=pki / "extender-client.key",
        )

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "gibbous-dev",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": ADMIN_USER, "user": {"token": self.token}}],
            "contexts": [
                {"name": "gibbous-dev", "context": {"cluster": "gibbous-dev", "user": ADMIN_USER}}
            ],
            "current-context": "gibbous-dev",
        }
        write_private(self.kubeconfig, json.dumps(config, indent=2).encode())

    def _wait_ready(self, timeout_s: float) -> None:
        wait_until_healthy(
            urllib.request.Request(
                f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.token}"}
            ),
            context=ssl.create_default_context(cafile=str(self.ca_file)),
            timeout_s=timeout_s,
            processes=self.processes,
            logs=self.directory,
        )

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        self.processes.clear()
