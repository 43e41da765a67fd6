"""Certificate rotation on a fake clock: issue, renew, rotate the CA with an overlap."""

from __future__ import annotations

import base64
import datetime
import io
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from gibbous.certs.authority import service_names
from gibbous.certs.rotation import CertState, RotationPolicy, plan_rotation
from gibbous.certs.selfmanaged import ConflictError, SelfManagedCertificates, state_from_secret
from gibbous.cli import main

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
POLICY = RotationPolicy(
    dns_names=tuple(service_names("gibbous-webhook", "gibbous")), ca_days=90, serving_days=30
)
DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)


def cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def trusted(state: CertState) -> bool:
    """Would a client holding caBundle accept the serving certificate?"""
    serving = cert(state.tls_crt)
    for pem in state.ca_certs:
        try:
            serving.verify_directly_issued_by(cert(pem))
            return True
        except Exception:
            continue
    return False


def test_first_run_issues_a_ca_and_a_serving_certificate_for_the_service() -> None:
    state = plan_rotation(None, T0, POLICY)
    assert len(state.ca_certs) == 1 and state.ca_key and state.tls_key
    names = (
        cert(state.tls_crt).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    )
    assert set(names.get_values_for_type(x509.DNSName)) == {
        "gibbous-webhook",
        "gibbous-webhook.gibbous",
        "gibbous-webhook.gibbous.svc",
        "gibbous-webhook.gibbous.svc.cluster.local",
    }
    assert trusted(state)
    assert plan_rotation(state, T0 + HOUR, POLICY) == state  # nothing due


def test_serving_certificate_is_renewed_at_two_thirds_of_its_life() -> None:
    state = plan_rotation(None, T0, POLICY)
    assert plan_rotation(state, T0 + 19 * DAY, POLICY) == state
    renewed = plan_rotation(state, T0 + 21 * DAY, POLICY)
    assert renewed.tls_crt != state.tls_crt and renewed.ca_certs == state.ca_certs
    assert trusted(renewed)


def test_ca_rotation_keeps_both_cas_during_the_overlap() -> None:
    state = plan_rotation(None, T0, POLICY)
    # Walk day by day; at every step the served certificate must be trusted by the bundle.
    seen_two_cas = False
    now = T0
    while now < T0 + 200 * DAY:
        now += DAY / 4
        state = plan_rotation(state, now, POLICY)
        assert trusted(state), now
        seen_two_cas = seen_two_cas or len(state.ca_certs) == 2
    assert seen_two_cas


def test_new_ca_signs_only_after_the_overlap() -> None:
    state = plan_rotation(None, T0, POLICY)
    at_rotation = T0 + 61 * DAY  # CA (90 days) has less than a third left
    rotated = plan_rotation(state, at_rotation, POLICY)
    assert len(rotated.ca_certs) == 2
    newest, previous = cert(rotated.ca_certs[0]), cert(rotated.ca_certs[1])
    # Within the overlap the served certificate is still signed by the previous CA.
    cert(rotated.tls_crt).verify_directly_issued_by(previous)
    after = plan_rotation(rotated, at_rotation + 2 * HOUR, POLICY)
    cert(after.tls_crt).verify_directly_issued_by(newest)
    retired = plan_rotation(after, at_rotation + 3 * HOUR, POLICY)
    assert len(retired.ca_certs) == 1 and cert(retired.ca_certs[0]) == newest


def test_wrong_names_force_a_new_serving_certificate() -> None:
    state = plan_rotation(None, T0, POLICY)
    moved = RotationPolicy(
        dns_names=tuple(service_names("other", "gibbous")), ca_days=90, serving_days=30
    )
    assert plan_rotation(state, T0 + HOUR, moved).tls_crt != state.tls_crt


class FakeStore:
    def __init__(self) -> None:
        self.secret: dict[str, Any] | None = None
        self.version = 0
        self.bundles = {
            kind: ["", ""]
            for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
        }
        self.conflict_once = False

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.secret

    def _store(self, body: dict[str, Any]) -> None:
        if self.conflict_once:
            self.conflict_once = False
            raise ConflictError("changed")
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        self.secret = body

    def create_secret(self, namespace: str, body: dict[str, Any]) -> None:
        self._store(body)

    def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        assert body["metadata"]["resourceVersion"] == str(self.version)  # optimistic concurrency
        self._store(body)

    def webhook_ca_bundles(self, kind: str, name: str) -> list[str] | None:
        return list(self.bundles[kind]) if name == "zz-gibbous" else None

    def patch_webhook_ca_bundles(self, kind: str, name: str, bundle_b64: str, count: int) -> None:
        self.bundles[kind] = [bundle_b64] * count


def self_managed(
    store: FakeStore, tmp_path: Path, clock: Callable[[], datetime.datetime]
) -> SelfManagedCertificates:
    return SelfManagedCertificates(
        store=store,
        namespace="gibbous",
        secret="gibbous-webhook-tls",
        configurations=("zz-gibbous",),
        cert_path=tmp_path / "tls.crt",
        key_path=tmp_path / "tls.key",
        policy=POLICY,
        clock=clock,
    )


def test_sync_persists_writes_files_and_publishes_ca_bundle(tmp_path: Path) -> None:
    store = FakeStore()
    now = [T0]
    certs = self_managed(store, tmp_path, lambda: now[0])
    state = certs.sync()
    assert store.secret is not None and store.secret["type"] == "kubernetes.io/tls"
    assert (tmp_path / "tls.crt").read_bytes() == state.tls_crt
    assert stat.S_IMODE((tmp_path / "tls.key").stat().st_mode) == 0o600
    expected = base64.b64encode(state.ca_bundle).decode()
    assert all(bundle == [expected, expected] for bundle in store.bundles.values())
    version = store.version
    certs.sync()
    assert store.version == version  # nothing due, nothing written
    now[0] = T0 + 61 * DAY
    rotated = certs.sync()
    assert len(rotated.ca_certs) == 2
    assert (
        store.bundles["MutatingWebhookConfiguration"][0]
        == base64.b64encode(rotated.ca_bundle).decode()
    )
    assert state_from_secret(store.secret) == rotated


def test_a_conflicting_writer_wins_and_its_state_is_used(tmp_path: Path) -> None:
    store = FakeStore()
    certs = self_managed(store, tmp_path, lambda: T0)
    first = certs.sync()
    store.conflict_once = True
    certs.clock = lambda: T0 + 21 * DAY  # renewal due, but another replica writes first
    assert certs.sync() == first  # falls back to what is stored; next round retries


def test_certs_generate_command(tmp_path: Path) -> None:
    out = io.StringIO()
    code = main(
        [
            "certs",
            "generate",
            "--service",
            "hook",
            "--namespace",
            "ns",
            "--out",
            str(tmp_path),
            "--ip",
            "127.0.0.1",
            "--days",
            "10",
        ],
        stdout=out,
    )
    assert code == 0
    assert stat.S_IMODE((tmp_path / "tls.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600
    serving = cert((tmp_path / "tls.crt").read_bytes())
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hook.ns.svc.cluster.local" in names.get_values_for_type(x509.DNSName)
    serving.verify_directly_issued_by(cert((tmp_path / "ca.crt").read_bytes()))
    assert (
        main(
            [
                "certs",
                "generate",
                "--service",
                "h",
                "--namespace",
                "n",
                "--out",
                str(tmp_path),
                "--ip",
                "nope",
            ],
            stdout=out,
        )
        == 2
    )
