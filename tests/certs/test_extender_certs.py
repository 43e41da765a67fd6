"""The extender's self-managed mutual TLS (the chart's webhook.tls self), on a fake clock
and a fake Secret store, checked by OpenSSL: a client holding the scheduler's Secret
completes a handshake with a server serving the written files and requiring a client
certificate of the written CA; a client without one does not."""

from __future__ import annotations

import base64
import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from gibbous.certs.authority import service_names
from gibbous.certs.rotation import RotationPolicy
from gibbous.certs.selfmanaged import ConflictError, SelfManagedExtenderCertificates
from gibbous.cli import main

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
HOST = "gibbous-extender.gibbous.svc"


class Secrets:
    """Secrets by name, with resourceVersions, and a conflict on demand."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.writes = 0
        self.conflict_on: str | None = None

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(name)

    def _store(self, name: str, body: dict[str, Any]) -> None:
        if self.conflict_on == name:
            self.conflict_on = None
            raise ConflictError("changed")
        self.writes += 1
        body["metadata"]["resourceVersion"] = str(self.writes)
        self.objects[name] = body

    def create_secret(self, namespace: str, body: dict[str, Any]) -> None:
        assert body["metadata"]["name"] not in self.objects
        self._store(body["metadata"]["name"], body)

    def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        assert (
            body["metadata"]["resourceVersion"] == self.objects[name]["metadata"]["resourceVersion"]
        )
        self._store(name, body)

    def file(self, name: str, key: str, directory: Path) -> str:
        """A key of a Secret as a file, as a Secret volume shows it."""
        path = directory / f"{name}-{key}"
        path.write_bytes(base64.b64decode(self.objects[name]["data"][key]))
        return str(path)


def extender_certs(
    store: Secrets, tmp_path: Path, now: list[datetime.datetime]
) -> SelfManagedExtenderCertificates:
    return SelfManagedExtenderCertificates(
        store=store,
        namespace="gibbous",
        secret="gibbous-extender-tls",
        client_secret="gibbous-extender-client-tls",
        client_name="gibbous-scheduler",
        cert_path=tmp_path / "tls.crt",
        key_path=tmp_path / "tls.key",
        client_ca_path=tmp_path / "ca.crt",
        policy=RotationPolicy(
            dns_names=tuple(service_names("gibbous-extender", "gibbous")),
            ca_days=90,
            serving_days=30,
        ),
        client_days=30,
        clock=lambda: now[0],
    )


def server_context(directory: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(directory / "tls.crt"), str(directory / "tls.key"))
    context.load_verify_locations(cafile=str(directory / "ca.crt"))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def scheduler_context(store: Secrets, directory: Path, with_pair: bool = True) -> ssl.SSLContext:
    """kube-scheduler's side: caFile, certFile and keyFile from the client Secret."""
    name = "gibbous-extender-client-tls"
    context = ssl.create_default_context(cafile=store.file(name, "ca.crt", directory))
    if with_pair:
        context.load_cert_chain(
            store.file(name, "tls.crt", directory), store.file(name, "tls.key", directory)
        )
    return context


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, when: datetime.datetime) -> None:
    """A whole TLS handshake in memory; raises ssl.SSLError when either side refuses.
    OpenSSL checks validity against the real clock: `when` must be near now."""
    assert abs(datetime.datetime.now(datetime.UTC) - when) < DAY
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(to_client, to_server, server_hostname=HOST)
    server_side = server.wrap_bio(to_server, to_client, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", client_side), ("server", server_side)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        if all(done.values()):
            # TLS 1.3: the server's verdict on the client certificate reaches the client
            # with the first application data.
            client_side.write(b"ping")
            assert server_side.read(4) == b"ping"
            return
    raise AssertionError("handshake did not finish")


def common_name(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_the_scheduler_s_secret_is_answered_and_a_caller_without_it_is_refused(
    tmp_path: Path,
) -> None:
    now = [datetime.datetime.now(datetime.UTC)]
    store = Secrets()
    extender_certs(store, tmp_path, now).sync()
    client = store.objects["gibbous-extender-client-tls"]
    assert client["type"] == "kubernetes.io/tls"
    assert set(client["data"]) == {"ca.crt", "tls.crt", "tls.key"}  # no CA key
    assert common_name(base64.b64decode(client["data"]["tls.crt"])) == "gibbous-scheduler"
    handshake(server_context(tmp_path), scheduler_context(store, tmp_path), now[0])
    with pytest.raises(ssl.SSLError):
        handshake(server_context(tmp_path), scheduler_context(store, tmp_path, False), now[0])
    # The webhook-style serving Secret holds the CA key; the scheduler never mounts it.
    assert "ca.key" in store.objects["gibbous-extender-tls"]["data"]


def test_nothing_due_writes_nothing_and_renewals_keep_the_pair_working(tmp_path: Path) -> None:
    now = [T0]
    store = Secrets()
    certs = extender_certs(store, tmp_path, now)
    certs.sync()
    writes = store.writes
    certs.sync()
    assert store.writes == writes
    first = store.objects["gibbous-extender-client-tls"]["data"]["tls.crt"]
    now[0] = T0 + 21 * DAY  # past two thirds of the client certificate's 30 days
    certs.sync()
    assert store.objects["gibbous-extender-client-tls"]["data"]["tls.crt"] != first


def test_a_new_ca_is_trusted_by_the_running_server_before_a_client_certificate_uses_it(
    tmp_path: Path,
) -> None:
    # A CA of 90 days is renewed after 60; the clock runs from 61 days ago to now, so
    # that OpenSSL (which reads the real clock) checks the state at the end.
    real = datetime.datetime.now(datetime.UTC)
    now = [real - 61 * DAY]
    store = Secrets()
    certs = extender_certs(store, tmp_path, now)
    certs.sync()
    started = server_context(tmp_path)  # the running server: CAs read at start
    now[0] = real - datetime.timedelta(hours=3)
    rotated = certs.sync()
    assert len(rotated.ca_certs) == 2
    # In the overlap the client certificate still comes from the old CA. (The server
    # reloads its serving pair from the files, as gibbous.certs.reload does.)
    started.load_cert_chain(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    handshake(started, scheduler_context(store, tmp_path), real)
    now[0] = real
    after = certs.sync()
    client_pem = base64.b64decode(store.objects["gibbous-extender-client-tls"]["data"]["tls.crt"])
    newest = x509.load_pem_x509_certificate(after.ca_certs[0])
    x509.load_pem_x509_certificate(client_pem).verify_directly_issued_by(newest)
    # What the command does with a changed bundle: add it to the running server's CAs.
    started.load_verify_locations(cadata=after.ca_bundle.decode())
    started.load_cert_chain(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    handshake(started, scheduler_context(store, tmp_path), real)


def test_a_conflicting_writer_of_the_client_secret_is_left_its_write(tmp_path: Path) -> None:
    now = [T0]
    store = Secrets()
    certs = extender_certs(store, tmp_path, now)
    store.conflict_on = "gibbous-extender-client-tls"
    certs.sync()
    assert "gibbous-extender-client-tls" not in store.objects  # another replica's to write
    certs.sync()
    assert "gibbous-extender-client-tls" in store.objects


def test_self_managed_certs_need_the_files_to_write(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["extender", "--self-managed-certs", "--tls-cert=/x/tls.crt", "--tls-key=/x/tls.key"]
    )
    assert code == 2
    assert "--tls-client-ca" in capsys.readouterr().err


@pytest.mark.parametrize(
    "damage",
    ["not base64", "a truncated CA key", "another certificate's key", "a truncated client key"],
)
def test_a_damaged_secret_is_replaced_by_a_working_pair(tmp_path: Path, damage: str) -> None:
    # A Secret edited by hand or cut short must not stop the extender (with ignorable: true
    # kube-scheduler would place pods without it): what cannot be used is issued anew.
    now = [datetime.datetime.now(datetime.UTC)]
    store = Secrets()
    certs = extender_certs(store, tmp_path, now)
    certs.sync()
    server = store.objects["gibbous-extender-tls"]["data"]
    client = store.objects["gibbous-extender-client-tls"]["data"]
    if damage == "not base64":
        server["ca.key"] = client["tls.key"] = "%%% not base64 %%%"
    elif damage == "a truncated CA key":
        server["ca.key"] = server["ca.key"][:40]
    elif damage == "another certificate's key":
        server["tls.key"] = client["tls.key"]
    else:
        client["tls.key"] = client["tls.key"][:40]
    certs.sync()
    handshake(server_context(tmp_path), scheduler_context(store, tmp_path), now[0])
