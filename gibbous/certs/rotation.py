"""When to renew the webhook's CA and serving certificate: a pure planner.

State is what the Secret holds: the trusted CAs (newest first, PEM), the newest
CA's key, the serving certificate and key, and when the newest CA was first
published in `caBundle`. Time is a parameter.

Rules, in order:
1. No usable CA: make one, and a serving certificate signed by it.
2. The newest CA has less than a third of its life left: make a new CA and
   publish it beside the old one (both in caBundle); keep serving with the old
   CA's certificate until the overlap window has passed, so every API server
   trusts the new CA before any certificate signed by it is presented.
3. Re-issue the serving certificate when it is missing, names the wrong hosts,
   has less than a third of its life left, or is signed by an older CA once
   the overlap has passed. Sign with the newest CA once published long enough,
   else with the still-valid previous one.
4. Drop CAs that have expired, and older CAs once the serving certificate is
   signed by the newest and another overlap has passed.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import NameOID

from gibbous.certs.authority import KeyPair, generate_ca, generate_client, generate_serving


@dataclass(frozen=True)
class CertState:
    ca_certs: tuple[bytes, ...] = ()  # PEM, newest first
    ca_key: bytes = b""  # newest CA's key
    previous_ca_key: bytes = b""  # kept while the previous CA may still sign
    tls_crt: bytes = b""
    tls_key: bytes = b""
    ca_published_at: datetime.datetime | None = None

    @property
    def ca_bundle(self) -> bytes:
        return b"".join(self.ca_certs)


@dataclass(frozen=True)
class RotationPolicy:
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...] = ()
    ca_days: int = 365
    serving_days: int = 90
    overlap: datetime.timedelta = field(default_factory=lambda: datetime.timedelta(hours=1))
    common_name: str = "gibbous webhook CA"


def _load(pem: bytes) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(pem) if pem else None
    except ValueError:
        return None


def _nearly_expired(cert: x509.Certificate, now: datetime.datetime) -> bool:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now >= end - (end - start) / 3


def _names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | {
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    }


def _holds_key(cert: x509.Certificate, key_pem: bytes) -> bool:
    """Whether `key_pem` is the private key of `cert` (a Secret edited by hand, or
    truncated, may hold anything)."""
    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return False
    spki = PublicFormat.SubjectPublicKeyInfo
    return bool(
        key.public_key().public_bytes(Encoding.DER, spki)
        == cert.public_key().public_bytes(Encoding.DER, spki)
    )


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _issue(signer: KeyPair, policy: RotationPolicy, now: datetime.datetime) -> KeyPair:
    """A serving certificate for the policy's names, signed by `signer`."""
    return generate_serving(
        signer,
        dns_names=list(policy.dns_names),
        ip_addresses=list(policy.ip_addresses),
        days=policy.serving_days,
        now=now,
    )


def plan_rotation(
    state: CertState | None, now: datetime.datetime, policy: RotationPolicy
) -> CertState:
    """The state the Secret should hold at `now` (equal to `state` when nothing is due)."""
    state = state or CertState()
    cas = [c for c in (_load(p) for p in state.ca_certs) if c is not None]
    newest = cas[0] if cas else None
    if newest is None or not _holds_key(newest, state.ca_key) or now >= newest.not_valid_after_utc:
        root = generate_ca(common_name=policy.common_name, days=policy.ca_days, now=now)
        first = _issue(root, policy, now)
        return CertState((root.cert_pem,), root.key_pem, b"", first.cert_pem, first.key_pem, now)

    if _nearly_expired(newest, now):
        successor = generate_ca(common_name=policy.common_name, days=policy.ca_days, now=now)
        state = replace(
            state,
            ca_certs=(successor.cert_pem, *state.ca_certs),
            ca_key=successor.key_pem,
            previous_ca_key=state.ca_key,
            ca_published_at=now,
        )
        cas = [successor.certificate, *cas]
        newest = cas[0]

    published = state.ca_published_at or now
    overlap_passed = now - published >= policy.overlap
    serving = _load(state.tls_crt)
    signer_is_newest = serving is not None and _issued_by(serving, newest)
    needs_new = (
        serving is None
        or not _holds_key(serving, state.tls_key)
        or _nearly_expired(serving, now)
        or not set(policy.dns_names) | set(policy.ip_addresses) <= _names(serving)
        or not any(
            _issued_by(serving, authority)
            for authority in cas
            if now < authority.not_valid_after_utc
        )
        or (not signer_is_newest and overlap_passed)
    )
    if needs_new:
        previous = cas[1] if len(cas) > 1 else None
        use_previous = (
            not overlap_passed
            and previous is not None
            and _holds_key(previous, state.previous_ca_key)
            and now < previous.not_valid_after_utc
        )
        signer = (
            KeyPair(previous.public_bytes(Encoding.PEM), state.previous_ca_key)
            if use_previous and previous
            else KeyPair(state.ca_certs[0], state.ca_key)
        )
        issued = _issue(signer, policy, now)
        state = replace(state, tls_crt=issued.cert_pem, tls_key=issued.key_pem)
        serving = issued.certificate
        signer_is_newest = not use_previous

    keep = [state.ca_certs[0]]
    for pem, older in zip(state.ca_certs[1:], cas[1:], strict=False):
        expired = now >= older.not_valid_after_utc
        retired = signer_is_newest and now - published >= 2 * policy.overlap
        if not expired and not retired:
            keep.append(pem)
    if tuple(keep) != state.ca_certs:
        state = replace(
            state,
            ca_certs=tuple(keep),
            previous_ca_key=state.previous_ca_key if len(keep) > 1 else b"",
        )
    return state


@dataclass(frozen=True)
class ClientState:
    """A client Secret (the Gibbous scheduler's pair for the extender): the CAs the
    serving certificate is checked with, and a client certificate and key."""

    ca_bundle: bytes = b""
    tls_crt: bytes = b""
    tls_key: bytes = b""


def serving_signer(state: CertState) -> KeyPair | None:
    """The CA (with its key) that signed the serving certificate: the newest, or during a
    CA rotation's overlap the previous one."""
    serving = _load(state.tls_crt)
    keys = (state.ca_key, state.previous_ca_key)
    for pem, key in zip(state.ca_certs, keys, strict=False):
        authority = _load(pem)
        if (
            serving is not None
            and authority is not None
            and _holds_key(authority, key)
            and _issued_by(serving, authority)
        ):
            return KeyPair(pem, key)
    return None


def plan_client(
    client: ClientState | None,
    server: CertState,
    now: datetime.datetime,
    *,
    common_name: str,
    days: int,
) -> ClientState:
    """The client Secret at `now` (equal to `client` when nothing is due), beside the
    server's `server` state (as `plan_rotation` left it): the client certificate comes
    from the CA that signed the serving certificate, so a server that trusts the CAs it
    serves with accepts it; it is re-issued when missing, unreadable, in the last third
    of its life, of another common name or from another CA. The bundle follows the
    server's."""
    client = client or ClientState()
    signer = serving_signer(server)
    if signer is None:
        raise ValueError("the server state has no serving certificate from a CA it holds")
    current = _load(client.tls_crt)
    issued_here = current is not None and _issued_by(current, signer.certificate)
    if (
        current is None
        or not _holds_key(current, client.tls_key)
        or not issued_here
        or _nearly_expired(current, now)
        or [a.value for a in current.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        != [common_name]
    ):
        fresh = generate_client(signer, common_name=common_name, days=days, now=now)
        client = ClientState(client.ca_bundle, fresh.cert_pem, fresh.key_pem)
    if client.ca_bundle != server.ca_bundle:
        client = replace(client, ca_bundle=server.ca_bundle)
    return client
