"""Self-managed TLS inside the cluster: the webhook's, and the extender's mutual TLS.

One Secret holds the CA(s) and the serving certificate; every webhook replica
runs `sync` periodically: plan the rotation (pure, gibbous.certs.rotation),
write the Secret back with optimistic concurrency (another replica may win;
the loser re-reads next time), write the serving files for the TLS server to
reload, and put the CA bundle into the `caBundle` of every webhook entry of our
Mutating- and ValidatingWebhookConfiguration.

The extender keeps its own CA and serving certificate the same way (a CA of its own:
the API server trusting the webhook's must not make a caller of the extender), and a
second Secret with the Gibbous scheduler's client pair and the CA bundle, which the
scheduler mounts (kube-scheduler's extender `tlsConfig`).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gibbous.certs.authority import replace_file, replace_pair
from gibbous.certs.rotation import (
    CertState,
    ClientState,
    RotationPolicy,
    plan_client,
    plan_rotation,
)

log = logging.getLogger("gibbous.certs")

PUBLISHED_ANNOTATION = "gibbous.dev/ca-published-at"


class Secrets(Protocol):
    """The Secret calls self-managed TLS makes (a kubernetes client adapter or a test fake)."""

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create_secret(self, namespace: str, body: dict[str, Any]) -> None: ...
    def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> None: ...


class SecretStore(Secrets, Protocol):
    """And the webhook's: its configurations' caBundle."""

    def webhook_ca_bundles(self, kind: str, name: str) -> list[str] | None: ...
    def patch_webhook_ca_bundles(
        self, kind: str, name: str, bundle_b64: str, count: int
    ) -> None: ...


class ConflictError(Exception):
    """The object changed since it was read (HTTP 409)."""


WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
_FIELDS = {
    "ca.crt": "ca_bundle",
    "ca.key": "ca_key",
    "ca-previous.key": "previous_ca_key",
    "tls.crt": "tls_crt",
    "tls.key": "tls_key",
}


def _decoded(data: dict[str, Any], key: str) -> bytes:
    """A Secret's value, or nothing when it is not base64 (the planner then issues anew)."""
    try:
        return base64.b64decode(data.get(key) or "", validate=True)
    except (binascii.Error, ValueError):
        return b""


def _split_pem(bundle: bytes) -> tuple[bytes, ...]:
    marker = b"-----END CERTIFICATE-----"
    parts = [p.strip() + b"\n" + marker + b"\n" for p in bundle.split(marker) if p.strip()]
    return tuple(p.lstrip(b"\n") for p in parts)


def state_from_secret(secret: dict[str, Any] | None) -> CertState | None:
    if not secret:
        return None
    data = secret.get("data") or {}
    raw = {key: _decoded(data, key) for key in _FIELDS}
    published = (secret.get("metadata", {}).get("annotations") or {}).get(PUBLISHED_ANNOTATION)
    try:
        published_at = datetime.datetime.fromisoformat(published) if published else None
    except ValueError:
        published_at = None
    return CertState(
        ca_certs=_split_pem(raw["ca.crt"]),
        ca_key=raw["ca.key"],
        previous_ca_key=raw["ca-previous.key"],
        tls_crt=raw["tls.crt"],
        tls_key=raw["tls.key"],
        ca_published_at=published_at,
    )


def secret_from_state(
    name: str, namespace: str, state: CertState, resource_version: str | None
) -> dict[str, Any]:
    values = {
        "ca.crt": state.ca_bundle,
        "ca.key": state.ca_key,
        "ca-previous.key": state.previous_ca_key,
        "tls.crt": state.tls_crt,
        "tls.key": state.tls_key,
    }
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": "gibbous"},
        "annotations": {
            PUBLISHED_ANNOTATION: state.ca_published_at.isoformat() if state.ca_published_at else ""
        },
    }
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": metadata,
        "data": {k: base64.b64encode(v).decode() for k, v in values.items() if v},
    }


def _store(store: Secrets, namespace: str, name: str, body: dict[str, Any], exists: bool) -> bool:
    """Create or replace a Secret read before; False when another writer was first (409)."""
    try:
        if exists:
            store.replace_secret(namespace, name, body)
        else:
            store.create_secret(namespace, body)
    except ConflictError:
        return False
    log.info("stored rotated certificates in secret %s/%s", namespace, name)
    return True


@dataclass
class SelfManagedCertificates:
    store: SecretStore
    namespace: str
    secret: str
    configurations: tuple[str, ...]
    cert_path: Path
    key_path: Path
    policy: RotationPolicy
    clock: Callable[[], datetime.datetime]

    def sync(self) -> CertState:
        """One round: rotate if due, persist, write files, publish caBundle. Returns the state used."""
        now = self.clock()
        current = self.store.read_secret(self.namespace, self.secret)
        state = state_from_secret(current)
        planned = plan_rotation(state, now, self.policy)
        if planned != state:
            version = (current or {}).get("metadata", {}).get("resourceVersion")
            body = secret_from_state(self.secret, self.namespace, planned, version)
            if not _store(self.store, self.namespace, self.secret, body, current is not None):
                # Another replica wrote first; use what it wrote.
                planned = (
                    state_from_secret(self.store.read_secret(self.namespace, self.secret))
                    or planned
                )
        self._write_files(planned)
        self._publish(planned)
        return planned

    def _write_files(self, state: CertState) -> None:
        if self.cert_path.exists() and self.cert_path.read_bytes() == state.tls_crt:
            return
        self.cert_path.parent.mkdir(parents=True, exist_ok=True)
        replace_pair(self.cert_path, self.key_path, state.tls_crt, state.tls_key)

    def _publish(self, state: CertState) -> None:
        bundle = base64.b64encode(state.ca_bundle).decode()
        for kind in WEBHOOK_KINDS:
            for name in self.configurations:
                current = self.store.webhook_ca_bundles(kind, name)
                if current is None:
                    log.warning("%s %s not found; caBundle not written", kind, name)
                    continue
                if any(value != bundle for value in current):
                    self.store.patch_webhook_ca_bundles(kind, name, bundle, len(current))
                    log.info("wrote caBundle into %s %s", kind, name)


def client_from_secret(secret: dict[str, Any] | None) -> ClientState | None:
    if not secret:
        return None
    data = secret.get("data") or {}
    raw = {key: _decoded(data, key) for key in ("ca.crt", "tls.crt", "tls.key")}
    return ClientState(raw["ca.crt"], raw["tls.crt"], raw["tls.key"])


def secret_from_client(
    name: str, namespace: str, state: ClientState, resource_version: str | None
) -> dict[str, Any]:
    values = {"ca.crt": state.ca_bundle, "tls.crt": state.tls_crt, "tls.key": state.tls_key}
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": "gibbous"},
    }
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": metadata,
        "data": {k: base64.b64encode(v).decode() for k, v in values.items()},
    }


@dataclass
class SelfManagedExtenderCertificates:
    """The extender's mutual TLS without cert-manager: its CA and serving pair in `secret`
    (rotated as the webhook's), the scheduler's client pair and the CA bundle in
    `client_secret`; the serving pair and the bundle (the CAs a client certificate must
    come from) written to files for the TLS server."""

    store: Secrets
    namespace: str
    secret: str
    client_secret: str
    client_name: str
    cert_path: Path
    key_path: Path
    client_ca_path: Path
    policy: RotationPolicy
    client_days: int
    clock: Callable[[], datetime.datetime]

    def sync(self) -> CertState:
        """One round: rotate what is due, persist both Secrets, write the files. Returns
        the server state used (its `ca_bundle` is what clients' certificates come from)."""
        server = SelfManagedCertificates(
            store=_NoConfigurations(self.store),
            namespace=self.namespace,
            secret=self.secret,
            configurations=(),
            cert_path=self.cert_path,
            key_path=self.key_path,
            policy=self.policy,
            clock=self.clock,
        )
        state = server.sync()
        # The client CA file before the client Secret: the server must list a CA before a
        # client certificate from it is published.
        if not self.client_ca_path.exists() or self.client_ca_path.read_bytes() != state.ca_bundle:
            replace_file(self.client_ca_path, state.ca_bundle)
        current = self.store.read_secret(self.namespace, self.client_secret)
        client = client_from_secret(current)
        planned = plan_client(
            client, state, self.clock(), common_name=self.client_name, days=self.client_days
        )
        if planned != client:
            version = (current or {}).get("metadata", {}).get("resourceVersion")
            body = secret_from_client(self.client_secret, self.namespace, planned, version)
            # A 409: another replica wrote first, from the same server Secret.
            _store(self.store, self.namespace, self.client_secret, body, current is not None)
        return state


@dataclass
class _NoConfigurations:
    """The extender's Secrets as a SecretStore: it publishes no caBundle."""

    secrets: Secrets

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.secrets.read_secret(namespace, name)

    def create_secret(self, namespace: str, body: dict[str, Any]) -> None:
        self.secrets.create_secret(namespace, body)

    def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.secrets.replace_secret(namespace, name, body)

    def webhook_ca_bundles(self, kind: str, name: str) -> list[str] | None:
        raise AssertionError("the extender has no webhook configuration")

    def patch_webhook_ca_bundles(self, kind: str, name: str, bundle_b64: str, count: int) -> None:
        raise AssertionError("the extender has no webhook configuration")


class KubernetesSecrets:
    """Secrets over the official client."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.api_client = api_client

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, **kwargs)
        except ApiException as error:
            if error.status == 404:
                return None
            if error.status == 409:
                raise ConflictError(str(error.reason)) from None
            raise

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        secret = self._call(self.core.read_namespaced_secret, name, namespace)
        return None if secret is None else self.api_client.sanitize_for_serialization(secret)

    def create_secret(self, namespace: str, body: dict[str, Any]) -> None:
        self._call(self.core.create_namespaced_secret, namespace, body)

    def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self._call(self.core.replace_namespaced_secret, name, namespace, body)


class KubernetesSecretStore(KubernetesSecrets):
    """SecretStore over the official client: Secrets, and the webhook configurations."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        super().__init__(api_client)
        self.admission = client.AdmissionregistrationV1Api(api_client)

    def _reader(self, kind: str) -> Any:
        if kind == "MutatingWebhookConfiguration":
            return self.admission.read_mutating_webhook_configuration
        return self.admission.read_validating_webhook_configuration

    def webhook_ca_bundles(self, kind: str, name: str) -> list[str] | None:
        configuration = self._call(self._reader(kind), name)
        if configuration is None:
            return None
        out = []
        for hook in configuration.webhooks or []:
            raw = hook.client_config.ca_bundle
            out.append(raw if isinstance(raw, str) else base64.b64encode(raw or b"").decode())
        return out

    def patch_webhook_ca_bundles(self, kind: str, name: str, bundle_b64: str, count: int) -> None:
        operations = [
            {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": bundle_b64}
            for index in range(count)
        ]
        patch = (
            self.admission.patch_mutating_webhook_configuration
            if kind == "MutatingWebhookConfiguration"
            else self.admission.patch_validating_webhook_configuration
        )
        self._call(patch, name, operations)
