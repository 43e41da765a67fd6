"""Reloading the serving certificate (issue #32): the working pair stays until a matching,
valid pair is read; an expired or not-yet-valid certificate and a key others can read are
warned about; rotation replaces the files whole."""

from __future__ import annotations

import datetime
import logging
import os
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry

from gibbous.certs.authority import KeyPair, generate_ca, generate_serving, write_private
from gibbous.certs.reload import CertificateReloader, UnusablePair
from gibbous.serving import server_tls_context
from tests.certs.test_rotation import DAY, T0, FakeStore, self_managed

NOW = datetime.datetime.now(datetime.UTC)
CA = generate_ca(common_name="reload CA", days=400, now=NOW - 30 * DAY)


def serving(days: int = 10, issued: datetime.datetime = NOW) -> KeyPair:
    return generate_serving(CA, dns_names=["localhost"], ip_addresses=[], days=days, now=issued)


def served_by(context: ssl.SSLContext) -> bytes | None:
    """The certificate (DER) a handshake with `context` presents; None when it fails."""
    server_side, client_side = socket.socketpair()
    server_side.settimeout(5)
    client_side.settimeout(5)

    def serve() -> None:
        try:
            with context.wrap_socket(server_side, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            server_side.close()

    thread = threading.Thread(target=serve)
    thread.start()
    client = ssl.create_default_context(cadata=CA.cert_pem.decode())
    try:
        with client.wrap_socket(client_side, server_hostname="localhost") as connection:
            return connection.getpeercert(binary_form=True)
    except (ssl.SSLError, OSError):
        return None
    finally:
        client_side.close()
        thread.join(timeout=10)


def der(pair: KeyPair) -> bytes:
    return pair.certificate.public_bytes(Encoding.DER)


def write(tmp: Path, pair: KeyPair, *, cert: bool = True, key: bool = True) -> None:
    if key:
        write_private(tmp / "tls.key", pair.key_pem)
    if cert:
        (tmp / "tls.crt").write_bytes(pair.cert_pem)


def reloader_for(tmp: Path, registry: CollectorRegistry | None = None) -> CertificateReloader:
    reloader = CertificateReloader(
        server_tls_context(), str(tmp / "tls.crt"), str(tmp / "tls.key"), registry=registry
    )
    reloader.load()
    return reloader


@pytest.mark.parametrize("first", ["key", "cert"])
def test_a_half_written_pair_keeps_the_working_one(tmp_path: Path, first: str) -> None:
    # Before, a certificate with someone else's key left the context half-changed and
    # every new handshake failed, while the log said the current one was kept.
    old, new = serving(), serving()
    write(tmp_path, old)
    reloader = reloader_for(tmp_path)
    assert served_by(reloader.context) == der(old)
    write(tmp_path, new, cert=first == "cert", key=first == "key")
    assert reloader.check() is False
    assert served_by(reloader.context) == der(old)
    write(tmp_path, new)
    assert reloader.check() is True
    assert served_by(reloader.context) == der(new)


def test_unreadable_files_at_start_are_an_error(tmp_path: Path) -> None:
    old, new = serving(), serving()
    (tmp_path / "tls.crt").write_bytes(old.cert_pem)
    write_private(tmp_path / "tls.key", new.key_pem)
    with pytest.raises(UnusablePair):
        reloader_for(tmp_path)


def _problems(registry: CollectorRegistry) -> dict[str, float]:
    return {
        str(sample.labels["problem"]): sample.value
        for metric in registry.collect()
        if metric.name == "gibbous_tls_certificate_problem"
        for sample in metric.samples
    }


def test_an_expired_certificate_is_warned_about_and_not_swapped_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expired = serving(days=1, issued=NOW - 5 * DAY)
    write(tmp_path, expired)
    registry = CollectorRegistry()
    with caplog.at_level(logging.WARNING, logger="gibbous.certs"):
        reloader = reloader_for(tmp_path, registry)
    assert "expired" in caplog.text  # served (nothing better at start), but said
    assert _problems(registry)["expired"] == 1.0
    good = serving()
    write(tmp_path, good)
    assert reloader.check() is True
    assert _problems(registry)["expired"] == 0.0
    caplog.clear()
    write(tmp_path, serving(days=1, issued=NOW - 5 * DAY))
    with caplog.at_level(logging.WARNING, logger="gibbous.certs"):
        assert reloader.check() is False
    assert "expired" in caplog.text
    assert served_by(reloader.context) == der(good)


def test_a_certificate_not_yet_valid_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, serving(issued=NOW + 2 * DAY))
    registry = CollectorRegistry()
    with caplog.at_level(logging.WARNING, logger="gibbous.certs"):
        reloader_for(tmp_path, registry)
    assert "not valid before" in caplog.text
    assert _problems(registry)["not_yet_valid"] == 1.0


def test_a_key_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, serving())
    (tmp_path / "tls.key").chmod(0o644)
    registry = CollectorRegistry()
    with caplog.at_level(logging.WARNING, logger="gibbous.certs"):
        reloader_for(tmp_path, registry)
    assert "readable by group or others" in caplog.text
    assert _problems(registry) == {
        "expired": 0.0,
        "not_yet_valid": 0.0,
        "key_readable_by_others": 1.0,
    }


def test_rotation_replaces_the_files_whole(tmp_path: Path) -> None:
    # Before, the key was rewritten in place and then the certificate: a reader between
    # the writes found a truncated file or a mismatched pair. Now each file is written
    # beside and renamed over the old one (a new inode), nothing left behind.
    now = [T0]
    certs = self_managed(FakeStore(), tmp_path, lambda: now[0])
    first = certs.sync()
    inodes = {name: (tmp_path / name).stat().st_ino for name in ("tls.crt", "tls.key")}
    now[0] = T0 + 25 * DAY  # past two thirds of the serving certificate's 30 days
    second = certs.sync()
    assert second.tls_crt != first.tls_crt
    assert (tmp_path / "tls.crt").read_bytes() == second.tls_crt
    assert (tmp_path / "tls.key").read_bytes() == second.tls_key
    for name, inode in inodes.items():
        assert (tmp_path / name).stat().st_ino != inode, name
    assert stat.S_IMODE((tmp_path / "tls.key").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tls.crt", "tls.key"]


def test_a_key_readable_through_the_processs_own_group_is_no_problem(tmp_path: Path) -> None:
    # The chart's Secret volumes: mode 0440, group = the pod's fsGroup = the process's group.
    write(tmp_path, serving())
    key = tmp_path / "tls.key"
    key.chmod(0o440)
    assert key.stat().st_gid == os.getegid()  # a file we create has our group
    registry = CollectorRegistry()
    reloader_for(tmp_path, registry)
    assert _problems(registry)["key_readable_by_others"] == 0.0
    # Readable by others still is, whatever the group.
    key.chmod(0o444)
    again = CollectorRegistry()
    reloader_for(tmp_path, again)
    assert _problems(again)["key_readable_by_others"] == 1.0
