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
from cryptography.hazmat.primitives.serialization import Encoding

from gibbous.certs.authority import KeyPair, generate_ca, generate_serving


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
    if newest is None or not state.ca_key or now >= newest.not_valid_after_utc:
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
        or not state.tls_key
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
            and state.previous_ca_key
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
