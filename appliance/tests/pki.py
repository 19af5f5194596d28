"""A real fleet PKI for tests: the same shape the `fleet_ca` role makes (one CA, a server
certificate per head-office host, a client certificate per site with CN = the site's name),
plus the bad cases a hub must refuse (another CA, an expired certificate, a revoked one).

Files are PEM, written where a test asks; `ssl` contexts load them like the services do."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = dt.timedelta(days=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key on disk."""

    cert: Path
    key: Path
    serial: int


@dataclass
class FleetCA:
    """A CA that issues server and client certificates into `directory`."""

    directory: Path
    name: str = "CLLMH test fleet CA"
    key: ec.EllipticCurvePrivateKey = field(default_factory=_key)
    revoked: list[int] = field(default_factory=list)
    existing: x509.Certificate | None = None

    @classmethod
    def load(cls, directory: Path, cert: Path, key: Path, password: bytes | None = None) -> FleetCA:
        """An existing CA (e.g. the `fleet_ca` role's) issuing into `directory`: its bad cases
        (an expired certificate) are then of the very CA a hub trusts."""
        certificate = x509.load_pem_x509_certificate(cert.read_bytes())
        private = serialization.load_pem_private_key(key.read_bytes(), password)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{key}: only EC CA keys are supported")
        name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return cls(directory, name=str(name), key=private, existing=certificate)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.existing is not None:
            self.certificate = self.existing
            self.cert_path = self.directory / f"{self._slug()}.crt"
            self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
            return
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - _DAY)
            .not_valid_after(_now() + 3650 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = self.directory / f"{self._slug()}.crt"
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def _slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.name.lower())

    def _issue(
        self,
        stem: str,
        common_name: str,
        usage: x509.ObjectIdentifier,
        names: list[str],
        *,
        not_after: dt.datetime,
        not_before: dt.datetime | None = None,
    ) -> Issued:
        key = _key()
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(not_before or _now() - _DAY)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            alt: list[x509.GeneralName] = []
            for name in names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    alt.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        issued = Issued(self.directory / f"{stem}.crt", self.directory / f"{stem}.key", serial)
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, issued.key)
        return issued

    def server(self, *names: str, days: int = 365) -> Issued:
        """A head-office server certificate for `names` (DNS names or IP addresses)."""
        return self._issue(
            f"server-{names[0]}",
            names[0],
            ExtendedKeyUsageOID.SERVER_AUTH,
            list(names),
            not_after=_now() + days * _DAY,
        )

    def site(self, site: str, days: int = 365) -> Issued:
        """A site's client certificate: CN = the site's name."""
        return self._issue(
            f"site-{site}", site, ExtendedKeyUsageOID.CLIENT_AUTH, [], not_after=_now() + days * _DAY
        )

    def expired_site(self, site: str) -> Issued:
        """A client certificate of this CA whose validity ended yesterday."""
        return self._issue(
            f"expired-{site}",
            site,
            ExtendedKeyUsageOID.CLIENT_AUTH,
            [],
            not_after=_now() - _DAY,
            not_before=_now() - 30 * _DAY,
        )

    def revoke(self, issued: Issued) -> Path:
        """Revoke a certificate; returns the CRL (PEM) listing every revoked one."""
        self.revoked.append(issued.serial)
        return self.crl()

    def crl(self) -> Path:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(_now() - _DAY)
            .next_update(_now() + 30 * _DAY)
        )
        for serial in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_now() - _DAY).build()
            )
        path = self.directory / f"{self._slug()}.crl"
        path.write_bytes(builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return path
