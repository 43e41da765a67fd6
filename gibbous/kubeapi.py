"""Small helpers around the official Kubernetes client shared by the shells."""

from __future__ import annotations

import datetime
import logging
import re
from typing import Any

from gibbous.core.errors import ConfigError

log = logging.getLogger("gibbous")

SCHEDULING_GATES_SINCE = (1, 27)  # PodSchedulingReadiness beta, on by default


def load_client_config(kubeconfig: str | None) -> object:
    """A kubernetes.client.Configuration from `kubeconfig`, or in-cluster, or the default kubeconfig."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as error:
        where = kubeconfig or "in-cluster service account or ~/.kube/config"
        raise ConfigError(f"cannot load Kubernetes credentials from {where}: {error}") from None
    # Watches hold connections, and a burst's launches and releases run side by side.
    configuration.connection_pool_maxsize = 16
    return configuration


def parse_version(major: str, minor: str) -> tuple[int, int] | None:
    """`("1", "27+")` -> (1, 27); managed clusters append `+` to the minor version."""
    match_major = re.match(r"\d+", major or "")
    match_minor = re.match(r"\d+", minor or "")
    if not match_major or not match_minor:
        return None
    return int(match_major.group()), int(match_minor.group())


def server_version(kubeconfig: str | None) -> tuple[int, int] | None:
    """The API server's (major, minor), or None when it cannot be reached."""
    try:
        from kubernetes import client

        api = client.ApiClient(load_client_config(kubeconfig))
        info = client.VersionApi(api).get_code()
        return parse_version(info.major, info.minor)
    except Exception as error:
        log.warning("cannot read the API server version: %s", error)
        return None


def supports_scheduling_gates(version: tuple[int, int] | None) -> bool:
    return version is not None and version >= SCHEDULING_GATES_SINCE


def rfc3339(epoch: float | None = None) -> str:
    """A Kubernetes `Time` (seconds, UTC) for `epoch`, or now."""
    moment = (
        datetime.datetime.fromtimestamp(epoch, datetime.UTC)
        if epoch is not None
        else datetime.datetime.now(datetime.UTC)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: datetime.datetime | None = None) -> str:
    """A Kubernetes `MicroTime` (what Leases and events.k8s.io take) for `moment`, or now."""
    return (moment or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_lease(api: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """A Lease as the API server writes it (times as RFC 3339 text, which the client's
    models would turn into datetimes), or None when there is none."""
    import json

    from kubernetes import client

    try:
        response = client.CoordinationV1Api(api).read_namespaced_lease(
            name, namespace, _preload_content=False
        )
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    lease: dict[str, Any] = json.loads(response.data)
    return lease


STATUS_KEY = "status.json"


def read_status_document(api: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """The autoscaler's status document from its ConfigMap, or None when there is none (no
    autoscaler here, or it has not written yet) or it cannot be read as one."""
    import json

    from kubernetes import client

    try:
        config_map = client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    text = (config_map.data or {}).get(STATUS_KEY)
    try:
        document = json.loads(text) if text else None
    except ValueError:
        log.warning("the status ConfigMap %s/%s holds no JSON document", namespace, name)
        return None
    return document if isinstance(document, dict) else None


def split_namespaced(text: str, flag: str) -> tuple[str, str]:
    """`NAMESPACE/NAME` -> (namespace, name); a ConfigError names `flag` otherwise."""
    namespace, _, name = text.partition("/")
    if not namespace or not name or "/" in name:
        raise ConfigError(f"{flag} {text!r}: expected NAMESPACE/NAME")
    return namespace, name
