"""`gibbous dev-cluster`: the whole of Gibbous on a real control plane on loopback.

`up` starts etcd, kube-apiserver and kube-controller-manager (`ControlPlane`), then the
Gibbous webhook (its own CA, registered with `caBundle`), the extender, a kube-scheduler
whose profiles `gibbous-scheduler` and `default-scheduler` call the extender, and the
autoscaler with the `kwok` provider and the built-in catalog. Every process runs in its
own session, so they outlive the command; `state.json` in the directory records them for
`status` and `down`. What the server version lacks is turned off and said (scheduling
gates before 1.27).
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import os
import shutil
import signal
import ssl
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from kubernetes import client
from kubernetes import config as kube_config

from gibbous.certs.authority import generate_ca, generate_serving, write_bundle
from gibbous.core import keys
from gibbous.core.errors import ConfigError
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config
from gibbous.devcluster.aws.state import INSTANCE_PROFILE
from gibbous.devcluster.binaries import find_binaries
from gibbous.devcluster.controlplane import (
    ControlPlane,
    ControlPlaneError,
    free_port,
    start_over_when_exited,
    wait_until_healthy,
)
from gibbous.devcluster.demo import DEPLOYMENT_DEMO, export_line, without_gibbous_report
from gibbous.devcluster.extras import missing_extra_message, missing_modules
from gibbous.devcluster.oci.state import CLUSTER, COMPARTMENT, SUBNET
from gibbous.kubeapi import SCHEDULING_GATES_SINCE

SCHEDULER_NAME = "gibbous-scheduler"
SCHEDULER_LEASE = ("kube-system", "gibbous-scheduler")


def default_directory() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gibbous" / "dev-cluster"


def webhook_configurations(
    config: Config, url: str, ca_pem: bytes
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mutating and validating configurations of manifests/base, pointing at `url`
    (tests/manifests checks that the two stay the same)."""
    name = f"{config.webhook_config_prefix}gibbous"
    label_key, label_value = config.managed_label
    bundle = base64.b64encode(ca_pem).decode()
    not_system = {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kube-system", "gibbous"],
            }
        ]
    }
    opted_in = {"matchLabels": {"gibbous.dev/managed": "true"}, **not_system}

    def hook(
        hook_name: str,
        path: str,
        operations: list[str],
        objects: dict[str, Any],
        namespaces: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "name": hook_name,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Ignore",
            "timeoutSeconds": 3,
            "matchPolicy": "Equivalent",
            "clientConfig": {"url": f"{url}{path}", "caBundle": bundle},
            "rules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": operations,
                    "resources": ["pods"],
                    "scope": "Namespaced",
                }
            ],
            "objectSelector": objects,
            "namespaceSelector": namespaces,
        }

    labelled = {"matchLabels": {label_key: label_value}}
    unlabelled = {"matchExpressions": [{"key": label_key, "operator": "DoesNotExist"}]}
    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                **hook("pods.gibbous.dev", "/mutate", ["CREATE"], labelled, not_system),
                "reinvocationPolicy": "IfNeeded",
            },
            {
                **hook(
                    "opted-in-namespaces.pods.gibbous.dev",
                    "/mutate-opted-in",
                    ["CREATE"],
                    unlabelled,
                    opted_in,
                ),
                "reinvocationPolicy": "IfNeeded",
            },
        ],
    }
    validating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            hook("pods.gibbous.dev", "/validate", ["CREATE", "UPDATE"], labelled, not_system),
            hook(
                "opted-in-namespaces.pods.gibbous.dev",
                "/validate-opted-in",
                ["CREATE", "UPDATE"],
                unlabelled,
                opted_in,
            ),
        ],
    }
    return mutating, validating


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not running
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        return stat.split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


EMULATED = {"aws": "EC2/EKS", "gcp": "GKE", "azure": "AKS", "oci": "OKE"}
# The dev cluster runs the emulated clouds at 1/100 of their time: a node pool AKS or OKE
# makes in about three minutes is there in under two seconds (docs/clouds/*.md).
DEV_TIME_SCALE = 0.01
# Process name (its log, ready file and entry in the state file) -> the package run as
# `python -m`: its `__main__` runs the emulator with its node agent.
EMULATOR_PACKAGES = {
    "ec2emulator": "gibbous.devcluster.aws",
    "gkeemulator": "gibbous.devcluster.gcp",
    "aksemulator": "gibbous.devcluster.azure",
    "okeemulator": "gibbous.devcluster.oci",
}

EMULATOR_OF_CLOUD = {
    "aws": "ec2emulator",
    "gcp": "gkeemulator",
    "azure": "aksemulator",
    "oci": "okeemulator",
}


@dataclass
class DevCluster:
    directory: Path
    out: TextIO = sys.stdout

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    def state(self) -> dict[str, Any] | None:
        try:
            document: dict[str, Any] = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return document

    def running(self) -> dict[str, bool]:
        state = self.state() or {}
        return {name: _alive(int(pid)) for name, pid in (state.get("pids") or {}).items()}

    # --- up ------------------------------------------------------------------------------------

    def up(
        self,
        overrides: list[str],
        *,
        kwok_boot_s: float = 5.0,
        timeout_s: float = 120.0,
        release: str = "current",
        cloud: str = "kwok",
        without_gibbous: bool = False,
    ) -> None:
        if without_gibbous and overrides:
            raise ConfigError(
                "--set configures the Gibbous processes, which --without-gibbous does not start: "
                "give the options to the chart (`helm install ... --set key=value`)"
            )
        missing = missing_modules(cloud)
        if missing:  # before anything starts or DIR is made
            raise ConfigError(missing_extra_message(cloud, missing))
        if any(self.running().values()):
            raise ControlPlaneError(
                f"a dev cluster already runs from {self.directory}; `gibbous dev-cluster down` first"
            )
        if self.directory.exists():
            shutil.rmtree(self.directory)
        binaries = find_binaries(release=release)
        version = binaries.version()
        gates = version >= SCHEDULING_GATES_SINCE
        notes = [f"Kubernetes {version[0]}.{version[1]} from {binaries.apiserver.parent}"]
        settings = [f"schedulerName={SCHEDULER_NAME}", "clusterID=dev-cluster", *overrides]
        if cloud == "aws":
            settings = [*settings[:2], f"aws.nodeInstanceProfile={INSTANCE_PROFILE}", *overrides]
        if cloud == "oci":
            settings = [
                *settings[:2],
                "cloudProvider=oci",
                "region=us-ashburn-1",
                f"oci.compartmentId={COMPARTMENT}",
                f"oci.clusterId={CLUSTER}",
                f"oci.subnetId={SUBNET}",
                *overrides,
            ]
        if cloud == "azure":
            settings = [
                *settings[:2],
                "cloudProvider=azure",
                "region=eastus",
                "azure.subscriptionId=00000000-0000-0000-0000-000000000000",
                "azure.resourceGroup=gibbous-dev",
                *overrides,
            ]
        if cloud == "gcp":
            settings = [
                *settings[:2],
                "cloudProvider=gcp",
                "gcp.project=gibbous-dev",
                "region=us-central1",
                *overrides,
            ]
        config = build_config(overrides=settings)  # refuse bad --set before starting anything
        if not gates:
            settings += ["provisioningGate=false"]
            notes.append(
                f"scheduling gates need Kubernetes >= {SCHEDULING_GATES_SINCE[0]}.{SCHEDULING_GATES_SINCE[1]}: "
                "the webhook adds none (provisioningGate and estimateOnlyNamespaces have no effect)"
            )
        plane = ControlPlane(binaries, self.directory)
        try:
            plane.start(timeout_s=timeout_s)
            if without_gibbous:
                self._start_without_gibbous(plane, cloud, kwok_boot_s, timeout_s)
                emulator = str((self.state() or {}).get("emulator") or "")
                self.out.write(
                    without_gibbous_report(
                        self.directory,
                        plane.server,
                        plane.kubeconfig,
                        f"{EMULATED[cloud]} emulator at {emulator}" if emulator else "",
                    )
                )
                return
            self._start_gibbous(
                plane,
                config,
                settings,
                gates=gates,
                kwok_boot_s=kwok_boot_s,
                timeout_s=timeout_s,
                cloud=cloud,
            )
        except BaseException:
            plane.stop()
            self._stop_recorded()
            raise
        self._report(plane, notes)

    def _start_component(
        self,
        plane: ControlPlane,
        command: str,
        flags: list[str],
        *,
        health_path: str,
        context: ssl.SSLContext | None,
        timeout_s: float,
    ) -> int:
        """Start `gibbous COMMAND --listen=127.0.0.1:PORT FLAGS` on a free port as process
        `gibbous-COMMAND` and wait until `health_path` answers (over TLS with `context`);
        started again on another port if it exits at start (`start_over_when_exited`)."""
        name = f"gibbous-{command}"
        scheme = "https" if context is not None else "http"

        def start() -> int:
            port = free_port()
            argv = [command, f"--listen=127.0.0.1:{port}", *flags]
            plane.spawn(name, [sys.executable, "-m", "gibbous", *argv])
            self._record(plane)
            wait_until_healthy(
                f"{scheme}://127.0.0.1:{port}{health_path}",
                context=context,
                timeout_s=timeout_s,
                processes={name: plane.processes[name]},
                logs=self.directory,
            )
            return port

        return start_over_when_exited(start, lambda: plane.processes[name].poll() is not None)

    def _record(self, plane: ControlPlane, **extra: Any) -> None:
        state = self.state() or {}
        state["pids"] = {name: p.pid for name, p in plane.processes.items()}
        state["server"] = plane.server
        state.update(extra)
        self.state_file.write_text(json.dumps(state, indent=2))

    def _provider_flags(
        self, plane: ControlPlane, config: Config, cloud: str, kwok_boot_s: float, timeout_s: float
    ) -> tuple[list[str], str]:
        """The autoscaler's provider flags for `cloud`, and its emulator's endpoint ("" for
        kwok), the emulator started."""
        provider_flags = [
            "--provider=kwok",
            f"--kwok-boot-seconds={kwok_boot_s:g}",
            "--kwok-run-pods",
        ]
        emulator = ""
        if cloud == "gcp":
            emulator = self._start_emulator(plane, "gkeemulator", kwok_boot_s, timeout_s)
            # The catalog from the emulator's machineTypes, acceleratorTypes and Billing
            # Catalog SKUs, kept beside the cluster's other files.
            provider_flags = [
                "--provider=gcp",
                f"--gcp-endpoint={emulator}",
                f"--catalog-cache={self.directory / 'catalog-cache'}",
            ]
        if cloud == "oci":
            emulator = self._start_emulator(plane, "okeemulator", kwok_boot_s, timeout_s)
            ready = json.loads((self.directory / "okeemulator.ready").read_text())
            emulator = ready["endpoint"]
            sdk_config = self.directory / "oci-config"
            sdk_config.write_text(
                "[DEFAULT]\n" + "".join(f"{k}={v}\n" for k, v in ready["config"].items())
            )
            provider_flags = [
                "--provider=oci",
                f"--oci-endpoint={emulator}",
                f"--oci-config={sdk_config}",
                # The catalog from the emulator's ListShapes and price list, kept beside
                # the cluster's other files.
                f"--catalog-cache={self.directory / 'catalog-cache'}",
            ]
        if cloud == "azure":
            emulator = self._start_emulator(plane, "aksemulator", kwok_boot_s, timeout_s)
            ready = json.loads((self.directory / "aksemulator.ready").read_text())
            emulator = ready["endpoint"]
            # The catalog from the emulator's Resource SKUs and Retail Prices API, kept
            # beside the cluster's other files.
            provider_flags = [
                "--provider=azure",
                f"--azure-endpoint={emulator}",
                f"--azure-ca={ready['ca']}",
                f"--azure-prices-url={emulator}/api/retail/prices",
                f"--catalog-cache={self.directory / 'catalog-cache'}",
            ]
        if cloud == "aws":
            emulator = self._start_emulator(plane, "ec2emulator", kwok_boot_s, timeout_s)
            # The autoscaler's boto3 clients find the emulator through the environment.
            os.environ.update(
                AWS_ENDPOINT_URL=emulator,
                AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing",
                AWS_DEFAULT_REGION=config.effective_region,
            )
            # The catalog from the emulator's DescribeInstanceTypes, offerings and Price
            # List API, kept beside the cluster's other files.
            provider_flags = [
                "--provider=aws",
                f"--catalog-cache={self.directory / 'catalog-cache'}",
            ]
        return provider_flags, emulator

    def _start_gibbous(
        self,
        plane: ControlPlane,
        config: Config,
        settings: list[str],
        *,
        gates: bool,
        kwok_boot_s: float,
        timeout_s: float,
        cloud: str = "kwok",
    ) -> None:
        sets = [item for setting in settings for item in ("--set", setting)]
        provider_flags, emulator = self._provider_flags(
            plane, config, cloud, kwok_boot_s, timeout_s
        )
        kubeconfig = str(plane.kubeconfig)
        now = datetime.datetime.now(datetime.UTC)
        ca = generate_ca(common_name="gibbous-dev-webhook-ca", days=30, now=now)
        serving = generate_serving(
            ca, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=30, now=now
        )
        files = write_bundle(self.directory / "webhook-tls", ca, serving)
        webhook_context = ssl.create_default_context(cafile=str(files["ca.crt"]))
        start = functools.partial(self._start_component, plane, timeout_s=timeout_s)
        ports = {
            "gibbous-webhook": start(
                "webhook",
                [
                    *sets,
                    f"--tls-cert={files['tls.crt']}",
                    f"--tls-key={files['tls.key']}",
                    f"--scheduling-gates={'on' if gates else 'off'}",
                    f"--kubeconfig={kubeconfig}",
                    f"--scheduler-lease={'/'.join(SCHEDULER_LEASE)}",
                    "--log-level=warning",
                ],
                health_path="/healthz",
                context=webhook_context,
            ),
            "gibbous-extender": start(
                "extender",
                [
                    *sets,
                    *plane.extender_tls.extender_flags(),
                    f"--kubeconfig={kubeconfig}",
                    "--log-level=warning",
                ],
                health_path="/readyz",
                context=plane.extender_tls.client_context(),
            ),
            "gibbous-autoscaler": start(
                "autoscaler",
                [
                    *sets,
                    *provider_flags,
                    f"--kubeconfig={kubeconfig}",
                    "--lease-namespace=kube-system",
                    f"--scheduler-lease={'/'.join(SCHEDULER_LEASE)}",
                ],
                health_path="/healthz",
                context=None,
            ),
        }
        webhook_url = f"https://127.0.0.1:{ports['gibbous-webhook']}"
        extender_url = f"https://127.0.0.1:{ports['gibbous-extender']}"
        configuration = client.Configuration()
        kube_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        api = client.ApiClient(configuration)
        mutating, validating = webhook_configurations(config, webhook_url, ca.cert_pem)
        admission = client.AdmissionregistrationV1Api(api)
        admission.create_mutating_webhook_configuration(mutating)
        admission.create_validating_webhook_configuration(validating)
        # Two processes, as in a real cluster: the Gibbous scheduler (leading through its
        # Lease, which the webhook and the autoscaler watch) and the default scheduler, so
        # stopping the one leaves the other.
        plane.start_scheduler(
            scheduler_name=SCHEDULER_NAME, extender_url=extender_url, lease=SCHEDULER_LEASE
        )
        plane.start_scheduler(
            scheduler_name="default-scheduler",
            extender_url="",
            extender=False,
            lease=("kube-system", "kube-scheduler"),
        )
        self._wait_for_routing(webhook_url, webhook_context, timeout_s)
        self._start_metrics(plane, timeout_s)
        self._record(
            plane,
            ports=ports,
            kubeconfig=kubeconfig,
            webhook=webhook_url,
            extender=extender_url,
            version=".".join(map(str, plane.binaries.version())),
            emulator=emulator,
            cloud=cloud,
        )

    def _start_without_gibbous(
        self, plane: ControlPlane, cloud: str, boot_s: float, timeout_s: float
    ) -> None:
        """The control plane as a cluster before Gibbous is installed: a plain default
        scheduler and, for --cloud, the emulator (which makes Nodes only for instances
        launched in it)."""
        plane.start_scheduler(
            scheduler_name="default-scheduler",
            extender_url="",
            extender=False,
            lease=("kube-system", "kube-scheduler"),
        )
        emulator = ""
        if cloud != "kwok":
            module = EMULATOR_OF_CLOUD[cloud]
            emulator = self._start_emulator(plane, module, boot_s, timeout_s)
            ready = self.directory / f"{module}.ready"
            if cloud in ("oci", "azure"):  # these say their own (HTTPS) endpoint
                emulator = json.loads(ready.read_text())["endpoint"]
        self._record(
            plane,
            kubeconfig=str(plane.kubeconfig),
            version=".".join(map(str, plane.binaries.version())),
            emulator=emulator,
            cloud=cloud,
            without_gibbous=True,
        )

    def _wait_for_routing(
        self, webhook_url: str, context: ssl.SSLContext, timeout_s: float
    ) -> None:
        """Until the webhook sees the Gibbous scheduler lead (its Lease renewed), new
        managed pods are left to the default scheduler; `up` returns once they are not."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"{webhook_url}/metrics", context=context, timeout=2
                ) as response:
                    if b"gibbous_webhook_scheduler_routed 1.0" in response.read():
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise ControlPlaneError("the webhook never saw the Gibbous scheduler's Lease renewed")

    def _start_metrics(self, plane: ControlPlane, timeout_s: float) -> None:
        """metrics.k8s.io as process `metricsapi`, registered and available."""
        ready = self.directory / "metricsapi.ready"
        ready.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "gibbous.devcluster.metricsapi",
            f"--kubeconfig={plane.kubeconfig}",
            f"--front-proxy-ca={plane.front_proxy_ca_file}",
            f"--ready-file={ready}",
        ]
        plane.spawn("metricsapi", argv)
        self._record(plane)
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            process = plane.processes["metricsapi"]
            if process.poll() is not None:
                tail = (self.directory / "metricsapi.log").read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"metricsapi exited with {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"metrics.k8s.io was not available after {timeout_s:.0f}s")
            time.sleep(0.2)

    def _start_emulator(
        self, plane: ControlPlane, module: str, boot_s: float, timeout_s: float
    ) -> str:
        """A cloud emulator and its node agent as process `<module>` (a key of
        `EMULATOR_PACKAGES`); returns its endpoint once it serves the cluster."""
        version = ".".join(map(str, plane.binaries.version()))
        ready = self.directory / f"{module}.ready"

        def start() -> str:
            port = free_port()
            ready.unlink(missing_ok=True)
            argv = [
                sys.executable,
                "-m",
                EMULATOR_PACKAGES[module],
                f"--kubeconfig={plane.kubeconfig}",
                f"--port={port}",
                "--cluster=dev-cluster",
                f"--kubernetes-version={version}",
                f"--boot-seconds={boot_s:g}",
                f"--time-scale={DEV_TIME_SCALE:g}",
                f"--ready-file={ready}",
            ]
            plane.spawn(module, argv)
            self._record(plane)
            deadline = time.monotonic() + timeout_s
            while not ready.exists():
                process = plane.processes[module]
                if process.poll() is not None:
                    tail = (self.directory / f"{module}.log").read_text(errors="replace")[-3000:]
                    raise ControlPlaneError(f"{module} exited with {process.returncode}:\n{tail}")
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"{module} was not ready after {timeout_s:.0f}s")
                time.sleep(0.2)
            return f"http://127.0.0.1:{port}"

        return start_over_when_exited(start, lambda: plane.processes[module].poll() is not None)

    def _report(self, plane: ControlPlane, notes: list[str]) -> None:
        state = self.state() or {}
        ports = state.get("ports") or {}
        lines = [
            f"Gibbous dev cluster up in {self.directory}",
            *(f"  note: {n}" for n in notes),
            f"  API server   {plane.server}",
            f"  webhook      {state.get('webhook')}  (zz-gibbous configurations registered)",
            f"  extender     {state.get('extender')}  (called by the {SCHEDULER_NAME} scheduler; default-scheduler runs apart)",
            f"  autoscaler   http://127.0.0.1:{ports.get('gibbous-autoscaler')}/metrics  "
            + (
                f"({state.get('cloud')} provider; "
                f"{EMULATED.get(str(state.get('cloud')), 'EC2/EKS')} emulator at "
                f"{state['emulator']}, its node agent plays the kubelets)"
                if state.get("emulator")
                else "(kwok provider)"
            ),
            "  metrics      metrics.k8s.io (`kubectl top`; a pod uses what its "
            f"{keys.SIMULATED_USAGE} annotation says, e.g. cpu=1800m,memory=1Gi, else its requests)",
            f"  logs         {self.directory}/*.log",
            "",
            "Try it (the demo of docs/getting-started.md):",
            "",
            export_line(plane.kubeconfig),
            DEPLOYMENT_DEMO,
            "",
            "gibbous dev-cluster status | down",
        ]
        self.out.write("\n".join(lines) + "\n")

    # --- status and down ---------------------------------------------------------------------

    def status(self) -> int:
        running = self.running()
        if not running:
            self.out.write(f"no dev cluster in {self.directory}\n")
            return 3
        state = self.state() or {}
        self.out.write(
            f"dev cluster in {self.directory} (Kubernetes {state.get('version', '?')}, {state.get('server')})\n"
        )
        for name, alive in running.items():
            self.out.write(f"  {name:<38} {'running' if alive else 'STOPPED'}\n")
        if all(running.values()):
            self.out.write(f"  {export_line(self.directory / 'kubeconfig')}\n")
            return 0
        return 1

    def down(self) -> None:
        stopped = self._stop_recorded()
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.out.write(f"stopped {stopped} process(es); removed {self.directory}\n")

    def _stop_recorded(self, grace_s: float = 15.0) -> int:
        pids = [int(pid) for pid in ((self.state() or {}).get("pids") or {}).values()]
        alive = [pid for pid in reversed(pids) if _alive(pid)]
        for pid in alive:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while any(_alive(pid) for pid in alive) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in alive:
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)
        return len(alive)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Each process leads its own session (start_new_session), so its group is its pid.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
