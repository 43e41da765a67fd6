"""Self-managed webhook TLS inside the cluster.

One Secret holds the CA(s) and the serving certificate; every webhook replica
runs `sync` periodically: plan the rotation (pure, gibbous.certs.rotation),
write the Secret back with optimistic concurrency (another replica may win;
the loser re-reads next time), write the serving files for the TLS server to
reload, and put the CA bundle into the `caBundle` of every webhook entry of our
Mutating- and ValidatingWebhookConfiguration.
"""

from __future__ import annotations

import base64
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gibbous.certs.authority import replace_pair
from gibbous.certs.rotation import CertState, RotationPolicy, plan_rotation

log = logging.getLogger("gibbous.certs")

PUBLISHED_ANNOTATION = "gibbous.dev/ca-published-at"


class SecretStore(Protocol):
    """The few API calls self-managed TLS needs (a kubernetes client adapter or a test fake)."""

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create_secret(self, namespace: str, body: dict[str, Any]) -> None: ...
    def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> None: ...
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


def _split_pem(bundle: bytes) -> tuple[bytes, ...]:
    marker = b"-----END CERTIFICATE-----"
    parts = [p.strip() + b"\n" + marker + b"\n" for p in bundle.split(marker) if p.strip()]
    return tuple(p.lstrip(b"\n") for p in parts)


def state_from_secret(secret: dict[str, Any] | None) -> CertState | None:
    if not secret:
        return None
    data = secret.get("data") or {}
    raw = {key: base64.b64decode(data.get(key) or "") for key in _FIELDS}
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
            try:
                if current is None:
                    self.store.create_secret(self.namespace, body)
                else:
                    self.store.replace_secret(self.namespace, self.secret, body)
                log.info(
                    "stored rotated webhook certificates in secret %s/%s",
                    self.namespace,
                    self.secret,
                )
            except ConflictError:
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


class KubernetesSecretStore:
    """SecretStore over the official client."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.admission = client.AdmissionregistrationV1Api(api_client)
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
