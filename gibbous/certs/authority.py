"""Generating the webhook's CA and serving certificate (cryptography, ECDSA P-256).

The serving certificate names the Service as kube-apiserver dials it:
`NAME`, `NAME.NS`, `NAME.NS.svc` and `NAME.NS.svc.cluster.local`, plus any extra
DNS names or IP addresses (e.g. 127.0.0.1 for a local control plane).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def service_names(service: str, namespace: str) -> list[str]:
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def generate_ca(*, common_name: str, days: int, now: datetime.datetime) -> KeyPair:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _pem(key))


def generate_serving(
    ca: KeyPair, *, dns_names: list[str], ip_addresses: list[str], days: int, now: datetime.datetime
) -> KeyPair:
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    return _leaf(
        ca,
        common_name=(dns_names or ip_addresses)[0],
        alt_names=alt_names,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        days=days,
        now=now,
    )


def generate_client(ca: KeyPair, *, common_name: str, days: int, now: datetime.datetime) -> KeyPair:
    """A client certificate: the API server's front-proxy identity, for example."""
    return _leaf(
        ca,
        common_name=common_name,
        alt_names=[],
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        days=days,
        now=now,
    )


def _leaf(
    ca: KeyPair,
    *,
    common_name: str,
    alt_names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    days: int,
    now: datetime.datetime,
) -> KeyPair:
    ca_cert = ca.certificate
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("CA key is not an ECDSA key")
    key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _pem(key))


def write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only (0600), never briefly world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    path.chmod(0o600)


def replace_file(path: Path, data: bytes) -> None:
    """Put a new file in place whole (written beside it, then renamed over it), 0600."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    staged = Path(name)
    try:
        write_private(staged, data)
        staged.replace(path)
    finally:
        staged.unlink(missing_ok=True)


def replace_pair(cert_path: Path, key_path: Path, cert_pem: bytes, key_pem: bytes) -> None:
    """Put a new certificate and key in place, each file whole: both are written to
    temporary files beside them first, then renamed over the old ones (a reader sees the
    old file or the new one, never a part). Between the two renames the files do not match;
    the reloader keeps the working pair until they do."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in ((key_path, key_pem), (cert_path, cert_pem)):
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            os.close(fd)
            staged.append((Path(name), path))
            write_private(Path(name), data)
        for staged_file, path in staged:
            staged_file.replace(path)
    finally:
        for staged_file, _ in staged:
            staged_file.unlink(missing_ok=True)


def write_bundle(out: Path, ca: KeyPair, serving: KeyPair) -> dict[str, Path]:
    """ca.crt, ca.key (0600), tls.crt, tls.key (0600): the names of a kubernetes.io/tls Secret."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("ca.crt", "ca.key", "tls.crt", "tls.key")}
    paths["ca.crt"].write_bytes(ca.cert_pem)
    write_private(paths["ca.key"], ca.key_pem)
    # Write the key first, then the certificate: a reloader that sees the new
    # certificate always finds its key already in place.
    write_private(paths["tls.key"], serving.key_pem)
    paths["tls.crt"].write_bytes(serving.cert_pem)
    return paths
