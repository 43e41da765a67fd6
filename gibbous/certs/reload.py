"""The serving certificate and key files, loaded into a live SSLContext when they change.

uvicorn-served apps share one SSLContext; loading a new chain into it switches new
handshakes to the new certificate without a restart. But OpenSSL loads the certificate
before it checks the key: a certificate with a key that does not match leaves the context
half-changed, and every later handshake fails. So a pair is read once, checked (the key
is the certificate's, the certificate parses), loaded into a scratch context first, and
only then into the live one; until then the working pair stays.

Warned about (log and, with a registry, a metric) but served: a certificate outside its
validity period (at start there is nothing better; on reload the working pair is kept
instead), and a key file readable by group or others.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import ssl
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger("gibbous.certs")

PROBLEMS = ("expired", "not_yet_valid", "key_readable_by_others")


class UnusablePair(ValueError):
    """The files do not hold a certificate and its own private key."""


@dataclass(frozen=True)
class ServingPair:
    chain_pem: bytes
    key_pem: bytes
    certificate: x509.Certificate
    key_mode: int
    # The key's group is the process's own: Kubernetes gives a Secret volume the pod's
    # fsGroup, and mode 0440 is how a non-root user reads a file root owns (the chart's way).
    key_group_is_ours: bool = False

    @classmethod
    def read(cls, cert: Path, key: Path) -> ServingPair:
        chain_pem, key_pem = cert.read_bytes(), key.read_bytes()
        key_stat = key.stat()
        key_mode = stat.S_IMODE(key_stat.st_mode)
        ours = key_stat.st_gid == os.getegid()
        try:
            certificate = x509.load_pem_x509_certificates(chain_pem)[0]
            private = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError, IndexError) as error:
            raise UnusablePair(f"cannot read the certificate or key: {error}") from None
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if certificate.public_key().public_bytes(der, spki) != private.public_key().public_bytes(
            der, spki
        ):
            raise UnusablePair("the key is not the certificate's")
        return cls(chain_pem, key_pem, certificate, key_mode, ours)

    def problems(self, now: datetime.datetime) -> tuple[str, ...]:
        found = []
        if now >= self.certificate.not_valid_after_utc:
            found.append("expired")
        if now < self.certificate.not_valid_before_utc:
            found.append("not_yet_valid")
        readers = 0o007 if self.key_group_is_ours else 0o077
        if self.key_mode & readers:
            found.append("key_readable_by_others")
        return tuple(found)

    def load_into(self, context: ssl.SSLContext) -> None:
        """Load into a scratch context, then `context`: a pair OpenSSL refuses changes nothing."""
        # load_cert_chain takes file names only: one private temporary file for both.
        with tempfile.TemporaryDirectory(prefix="gibbous-tls-") as directory:
            combined = Path(directory) / "pair.pem"
            fd = os.open(combined, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(self.chain_pem + b"\n" + self.key_pem)
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(combined)
            context.load_cert_chain(combined)


class CertificateReloader:
    """Loads `cert` and `key` into `context` now (`load`) and whenever they change (`check`)."""

    def __init__(
        self,
        context: ssl.SSLContext,
        cert: str,
        key: str,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.context = context
        self.cert = Path(cert)
        self.key = Path(key)
        self.clock = clock
        self.stamp: tuple[int, ...] | None = None
        self.serving: ServingPair | None = None
        self.problem_gauge = (
            Gauge(
                "gibbous_tls_certificate_problem",
                "1 while the certificate files last read have this problem (expired, "
                "not_yet_valid, key_readable_by_others)",
                ["problem"],
                registry=registry,
            )
            if registry is not None
            else None
        )
        self.expiry_gauge = (
            Gauge(
                "gibbous_tls_certificate_expiry_timestamp_seconds",
                "When the certificate being served expires (Unix time)",
                registry=registry,
            )
            if registry is not None
            else None
        )

    def _stamp(self) -> tuple[int, ...]:
        # The inode too: a rename puts a new file in place with possibly equal size and time.
        cert, key = self.cert.stat(), self.key.stat()
        return (
            cert.st_ino,
            cert.st_mtime_ns,
            cert.st_size,
            key.st_ino,
            key.st_mtime_ns,
            key.st_size,
        )

    def load(self) -> None:
        """The first load: raises when the files hold no usable pair (nothing to serve)."""
        stamp = self._stamp()
        pair = ServingPair.read(self.cert, self.key)
        self._report(pair)
        pair.load_into(self.context)
        self._serve(pair, stamp)

    def check(self) -> bool:
        """Reload if the files changed; True when a new pair was loaded."""
        try:
            stamp = self._stamp()
        except OSError as error:
            log.warning("cannot stat TLS files: %s; keeping the current certificate", error)
            return False
        if stamp == self.stamp:
            return False
        try:
            pair = ServingPair.read(self.cert, self.key)
        except (OSError, UnusablePair) as error:
            # A pair being written (one file new, the other not yet): try again next tick.
            log.warning("new TLS files are not usable (%s); keeping the current certificate", error)
            return False
        problems = self._report(pair)
        current_good = self.serving is not None and not {"expired", "not_yet_valid"} & set(
            self.serving.problems(self.clock())
        )
        if current_good and {"expired", "not_yet_valid"} & set(problems):
            log.warning("keeping the current certificate rather than one outside its validity")
            self.stamp = stamp  # warned; read again when the files change
            return False
        try:
            pair.load_into(self.context)
        except ssl.SSLError as error:
            log.warning("new TLS files do not load (%s); keeping the current certificate", error)
            return False
        self._serve(pair, stamp)
        log.info("reloaded TLS certificate from %s", self.cert)
        return True

    def _serve(self, pair: ServingPair, stamp: tuple[int, ...]) -> None:
        self.serving, self.stamp = pair, stamp
        if self.expiry_gauge is not None:
            self.expiry_gauge.set(pair.certificate.not_valid_after_utc.timestamp())

    def _report(self, pair: ServingPair) -> tuple[str, ...]:
        problems = pair.problems(self.clock())
        certificate = pair.certificate
        for problem in problems:
            if problem == "expired":
                log.warning(
                    "TLS certificate %s expired at %s", self.cert, certificate.not_valid_after_utc
                )
            elif problem == "not_yet_valid":
                log.warning(
                    "TLS certificate %s is not valid before %s",
                    self.cert,
                    certificate.not_valid_before_utc,
                )
            else:
                log.warning(
                    "TLS key %s is readable by group or others (mode %o); make it 0600 or 0400 "
                    "(0440 when its group is this process's own, as a fsGroup makes it)",
                    self.key,
                    pair.key_mode,
                )
        if self.problem_gauge is not None:
            for problem in PROBLEMS:
                self.problem_gauge.labels(problem).set(1.0 if problem in problems else 0.0)
        return problems

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.check()
