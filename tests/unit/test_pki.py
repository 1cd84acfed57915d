"""The test PKI: each certificate verifies (or fails to) exactly as its name promises."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.broker.pki import CertPair, TestPki
from harness.errors import PkiError

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp("pki"))


def _verify(ca_pem: Path, pair: CertPair, name: str) -> None:
    """A real in-memory TLS handshake: a client trusting ``ca_pem`` connects to ``name``
    and the server presents ``pair``. Raises ``ssl.SSLCertVerificationError`` on refusal."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pair.chain_pem, pair.key_pem)
    client_ctx = ssl.create_default_context(cafile=str(ca_pem))
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for label, side in (("client", client), ("server", server)):
            if not done[label]:
                try:
                    side.do_handshake()
                    done[label] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError(f"handshake did not finish: {done}")


@pytest.mark.parametrize("name", ["broker.test", "localhost", "127.0.0.1"])
def test_server_certificate_verifies_for_every_name(pki: TestPki, name: str) -> None:
    _verify(pki.ca_pem, pki.server, name)


def test_wrong_host_certificate_fails_for_the_broker_name(pki: TestPki) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _verify(pki.ca_pem, pki.wrong_host, "broker.test")


def test_expired_certificate_fails_and_is_really_expired(pki: TestPki) -> None:
    cert = x509.load_pem_x509_certificate(pki.expired.cert_pem.read_bytes())
    assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
        _verify(pki.ca_pem, pki.expired, "broker.test")


def test_untrusted_certificate_fails_against_the_ca_but_passes_its_own(pki: TestPki) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _verify(pki.ca_pem, pki.untrusted, "broker.test")
    _verify(pki.untrusted_ca_pem, pki.untrusted, "broker.test")


@pytest.mark.parametrize("label", ["server", "wrong_host", "expired", "untrusted"])
def test_each_certificate_exists_as_pem_and_identical_der(pki: TestPki, label: str) -> None:
    pair = pki.cert(label)
    pem_cert = x509.load_pem_x509_certificate(pair.cert_pem.read_bytes())
    assert x509.load_der_x509_certificate(pair.cert_der.read_bytes()) == pem_cert
    pem_key = serialization.load_pem_private_key(pair.key_pem.read_bytes(), None)
    der_key = serialization.load_der_private_key(pair.key_der.read_bytes(), None)
    assert pem_key.public_key() == der_key.public_key()
    assert pair.chain_pem.read_bytes().startswith(pair.cert_pem.read_bytes())


def test_ca_der_matches_ca_pem(pki: TestPki) -> None:
    assert x509.load_der_x509_certificate(pki.ca_der.read_bytes()) == (
        x509.load_pem_x509_certificate(pki.ca_pem.read_bytes())
    )


def test_missing_key_file_is_one_clear_line(tmp_path: Path) -> None:
    pki = TestPki.create(tmp_path)
    pki.server.key_pem.unlink()
    with pytest.raises(PkiError, match=r"server private key file .* does not exist") as info:
        pki.server.check_files()
    assert "\n" not in str(info.value)


def test_unknown_certificate_name(pki: TestPki) -> None:
    with pytest.raises(PkiError, match="unknown certificate 'bogus'"):
        pki.cert("bogus")
