"""Test PKI: a CA and the server certificates the TLS checks need, as PEM and DER files.

trustme makes the certificates; ``cryptography`` converts them to DER because the
MicroPython unix port's mbedTLS only accepts DER ``cadata`` (PEM fails there, for RSA and
ECDSA CAs alike).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.errors import PkiError

DEFAULT_NAMES: tuple[str, ...] = ("broker.test", "localhost", "127.0.0.1")
WRONG_HOST_NAME = "wrong-host.invalid"
CERT_VALIDITY_DAYS = 365  # server certificates: from yesterday, for a year


class ServerCert(StrEnum):
    """Which certificate a TLS front presents: the trusted one, or one a client must refuse."""

    SERVER = "server"  # signed by the CA, for the broker's names
    WRONG_HOST = "wrong_host"  # signed by the CA, for another host name only
    EXPIRED = "expired"  # signed by the CA, validity ended yesterday
    UNTRUSTED = "untrusted"  # signed by a CA the client was not given


@dataclass(frozen=True)
class CertPair:
    """One server certificate and its private key, as files.

    ``chain_pem`` holds the leaf followed by any intermediates, which is what a TLS
    server should present; ``names`` are the SANs it was issued for.
    """

    label: str
    cert_pem: Path
    key_pem: Path
    cert_der: Path
    key_der: Path
    chain_pem: Path
    names: tuple[str, ...]

    def check_files(self) -> None:
        """Raise :class:`PkiError` naming the first missing certificate or key file."""
        for what, path in (("certificate", self.chain_pem), ("private key", self.key_pem)):
            if not path.is_file():
                raise PkiError(
                    f"{self.label} {what} file {path} does not exist",
                    hint="make the test PKI with TestPki.create(directory) or pass existing files",
                )


def _pem_to_der_cert(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _pem_to_der_key(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    # Test keys stay world-readable on purpose: mosquitto run as root drops to its own
    # user before loading the key, and a 0600 root-owned key then fails to load.
    path.chmod(0o644)
    return path


@dataclass(frozen=True)
class TestPki:
    """A CA, a trusted server certificate and three certificates a client must refuse.

    Like a real broker's, the server certificates are valid from yesterday for one year
    (trustme's default would start in 2000, which an ESP32 whose RTC was never set, at
    2000-01-01, would accept: the clock checks of firmware v1.22+ would prove nothing).

    - ``server``: signed by the CA, SANs = ``names``
    - ``wrong_host``: signed by the CA, for another host name only
    - ``expired``: signed by the CA, SANs = ``names``, validity ended yesterday
    - ``untrusted``: SANs = ``names``, signed by a CA the client was not given
    """

    __test__ = False  # not a pytest test class, despite the name

    directory: Path
    names: tuple[str, ...]
    ca_pem: Path
    ca_der: Path
    untrusted_ca_pem: Path
    server: CertPair
    wrong_host: CertPair
    expired: CertPair
    untrusted: CertPair

    @classmethod
    def create(
        cls,
        directory: Path,
        names: Sequence[str] = DEFAULT_NAMES,
        *,
        key_type: trustme.KeyType = trustme.KeyType.ECDSA,
    ) -> TestPki:
        """Make every certificate and write it to ``directory`` (created if missing)."""
        names = tuple(names)
        if not names:
            raise PkiError("the test PKI needs at least one server name", hint="pass names=(...)")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PkiError(f"cannot create the PKI directory {directory}: {exc.strerror}") from exc
        ca = trustme.CA(key_type=key_type, organization_name="esp32-mqtt-hil test CA")
        rogue_ca = trustme.CA(key_type=key_type, organization_name="esp32-mqtt-hil untrusted CA")
        now = dt.datetime.now(dt.UTC)
        not_before = now - dt.timedelta(days=1)
        not_after = now + dt.timedelta(days=CERT_VALIDITY_DAYS)

        ca_pem = _write(directory / "ca.pem", ca.cert_pem.bytes())
        ca_der = _write(directory / "ca.der", _pem_to_der_cert(ca.cert_pem.bytes()))
        untrusted_ca_pem = _write(directory / "untrusted-ca.pem", rogue_ca.cert_pem.bytes())

        def pair(label: str, leaf: trustme.LeafCert, leaf_names: tuple[str, ...]) -> CertPair:
            cert = leaf.cert_chain_pems[0].bytes()
            key = leaf.private_key_pem.bytes()
            stem = label.replace("_", "-")
            return CertPair(
                label=label,
                cert_pem=_write(directory / f"{stem}.crt.pem", cert),
                key_pem=_write(directory / f"{stem}.key.pem", key),
                cert_der=_write(directory / f"{stem}.crt.der", _pem_to_der_cert(cert)),
                key_der=_write(directory / f"{stem}.key.der", _pem_to_der_key(key)),
                chain_pem=_write(
                    directory / f"{stem}.chain.pem",
                    b"".join(blob.bytes() for blob in leaf.cert_chain_pems),
                ),
                names=leaf_names,
            )

        common = names[0]
        return cls(
            directory=directory,
            names=names,
            ca_pem=ca_pem,
            ca_der=ca_der,
            untrusted_ca_pem=untrusted_ca_pem,
            server=pair(
                "server",
                ca.issue_cert(*names, common_name=common, key_type=key_type,
                not_before=not_before, not_after=not_after), names
            ),
            wrong_host=pair(
                "wrong_host",
                ca.issue_cert(WRONG_HOST_NAME, common_name=WRONG_HOST_NAME, key_type=key_type,
                              not_before=not_before, not_after=not_after),
                (WRONG_HOST_NAME,),
            ),
            expired=pair(
                "expired",
                ca.issue_cert(
                    *names,
                    common_name=common,
                    not_before=now - dt.timedelta(days=30),
                    not_after=now - dt.timedelta(days=1),
                    key_type=key_type,
                ),
                names,
            ),
            untrusted=pair(
                "untrusted",
                rogue_ca.issue_cert(*names, common_name=common, key_type=key_type,
                not_before=not_before, not_after=not_after),
                names,
            ),
        )

    def cert(self, which: ServerCert | str) -> CertPair:
        """The pair for ``which`` (a :class:`ServerCert`, or its name with - or _)."""
        try:
            choice = ServerCert(which.replace("-", "_"))
        except ValueError:
            raise PkiError(
                f"unknown certificate {which!r}", hint=f"use one of {', '.join(ServerCert)}"
            ) from None
        pairs = {ServerCert.SERVER: self.server, ServerCert.WRONG_HOST: self.wrong_host,
                 ServerCert.EXPIRED: self.expired, ServerCert.UNTRUSTED: self.untrusted}
        return pairs[choice]
