"""CRL test material: CAs, certificates with CRL distribution points, CRLs of every shape the
revocation tests need (revoked entries with reasons, delta, issuing distribution point,
unknown critical extensions, signed by another key), and a fake `CrlFetcher` port.

Times are µs since the epoch, as the engine's; everything is built in memory (RSA 1024 keys,
generated once per process: fast, and strong enough for tests that never leave it)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from engine.adapters.scep_inprocess import InProcessTransport
from engine.errors import PeerReason
from engine.revocation.ldap import CrlValues
from engine.revocation.transport import CrlFetcher, CrlUnavailable, NetworkCrlFetcher
from engine.scep_client import TransportError

DAY_US = 86_400_000_000
DER = serialization.Encoding.DER


def at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


@functools.cache
def key(n: int = 0) -> rsa.RSAPrivateKey:
    """The n-th test key of this process."""
    return rsa.generate_private_key(65537, 1024)


@dataclass(frozen=True)
class Issuer:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(DER)


def make_ca(cn: str = "Test Root CA", now: int = 0, *, key_n: int = 0,
            key_usage: x509.KeyUsage | None = None, signer: Issuer | None = None) -> Issuer:
    """A CA certificate (self-signed unless `signer`), valid a year around `now`."""
    k = key(key_n)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(signer.cert.subject if signer else name)
         .public_key(k.public_key()).serial_number(1000 + key_n)
         .not_valid_before(at(now) - timedelta(days=1)).not_valid_after(at(now) + timedelta(365))
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()),
                        critical=False))
    if key_usage is not None:
        b = b.add_extension(key_usage, critical=True)
    return Issuer(k, b.sign(signer.key if signer else k, hashes.SHA256()))


def key_usage(*, crl_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=True, crl_sign=crl_sign, encipher_only=False,
                         decipher_only=False)


def make_leaf(ca: Issuer, serial: int, cdps: Iterable[str | x509.Name] = (), now: int = 0,
              cn: str = "peer.example.com", *, key_n: int = 1,
              is_ca: bool = False) -> x509.Certificate:
    """A certificate from `ca` whose CRL distribution points are `cdps` (URIs, or directory
    names), one distribution point each."""
    k = key(key_n)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(ca.cert.subject).public_key(k.public_key()).serial_number(serial)
         .not_valid_before(at(now) - timedelta(days=1)).not_valid_after(at(now) + timedelta(90))
         .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    names = [x509.DirectoryName(c) if isinstance(c, x509.Name)
             else x509.UniformResourceIdentifier(c) for c in cdps]
    if names:
        b = b.add_extension(x509.CRLDistributionPoints(
            [x509.DistributionPoint([n], None, None, None) for n in names]), critical=False)
    return b.sign(ca.key, hashes.SHA256())


@dataclass
class CrlSpec:
    """What `make_crl` puts in a CRL (defaults: a fresh complete CRL, number 1, no entries)."""

    revoked: Iterable[tuple[int, str | None]] = ()  # (serial, reason flag name or None)
    this_update: int = 0
    next_update: int | None = None  # None: a day after this_update (cryptography needs one)
    number: int | None = 1
    delta_of: int | None = None  # a delta CRL of this base number
    idp_uris: tuple[str, ...] = ()
    only_user: bool = False
    only_ca: bool = False
    critical_unknown: bool = False  # an extension nobody processes, marked critical
    entry_critical_unknown: bool = False
    signer: rsa.RSAPrivateKey | None = None  # another key than the issuer's
    extra: list[x509.ExtensionType] = field(default_factory=list)


UNKNOWN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")


def make_crl(ca: Issuer, spec: CrlSpec | None = None, **kw: object) -> bytes:
    """A CRL's DER, issued in `ca`'s name, signed by its key unless `spec.signer`."""
    s = spec or CrlSpec(**kw)  # type: ignore[arg-type]
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
         .last_update(at(s.this_update)))
    b = b.next_update(at(s.this_update + DAY_US if s.next_update is None else s.next_update))
    if s.number is not None:
        b = b.add_extension(x509.CRLNumber(s.number), critical=False)
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
        ca.key.public_key()), critical=False)
    if s.delta_of is not None:
        b = b.add_extension(x509.DeltaCRLIndicator(s.delta_of), critical=True)
    if s.idp_uris or s.only_user or s.only_ca:
        b = b.add_extension(x509.IssuingDistributionPoint(
            [x509.UniformResourceIdentifier(u) for u in s.idp_uris] or None, None,
            s.only_user, s.only_ca, None, False, False), critical=True)
    if s.critical_unknown:
        b = b.add_extension(x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), critical=True)
    for ext in s.extra:
        b = b.add_extension(ext, critical=False)
    for serial, reason in s.revoked:
        r = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(
            at(s.this_update - DAY_US))
        if reason is not None:
            r = r.add_extension(x509.CRLReason(x509.ReasonFlags[reason]), critical=False)
        if s.entry_critical_unknown:
            r = r.add_extension(x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"),
                                critical=True)
        b = b.add_revoked_certificate(r.build())
    return b.sign(s.signer or ca.key, hashes.SHA256()).public_bytes(DER)


class FakeCrlFetcher:
    """The `CrlFetcher` port from a table: uri -> bytes (an LDAP entry's values: CrlValues),
    or the text of the failure."""

    def __init__(self, answers: Mapping[str, bytes | CrlValues | str] | None = None) -> None:
        self.answers: dict[str, bytes | CrlValues | str] = dict(answers or {})
        self.asked: list[tuple[str, float]] = []

    def fetch(self, uri: str, timeout_s: float) -> bytes | CrlValues:
        self.asked.append((uri, timeout_s))
        got = self.answers.get(uri, "the server answered HTTP 404")
        if isinstance(got, str):
            raise CrlUnavailable(got, PeerReason.BAD_ANSWER)
        return got


class InProcessCrlFetcher:
    """The `CrlFetcher` port of a device whose CAs are served in process: a CDP at an origin
    `network` serves (e.g. the built-in CA's http://ca.invalid/crl/ca.crl) is downloaded
    through it, from the same route `ca serve` answers (so the CA re-issues a CRL past half
    its lifetime, as on a real download); a loopback URI goes to `loopback` (the real
    fetcher by default); any other name is never resolved: tests reach only loopback."""

    def __init__(self, network: InProcessTransport,
                 loopback: CrlFetcher | None = None) -> None:
        self.network = network
        self.loopback = loopback if loopback is not None else NetworkCrlFetcher()
        self.asked: list[str] = []

    def fetch(self, uri: str, timeout_s: float) -> bytes | CrlValues:
        self.asked.append(uri)
        if uri.lower().startswith("http:") and self.network.serves(uri):
            try:
                reply = self.network.get(uri, {})
            except TransportError as e:
                raise CrlUnavailable(str(e)) from None
            if reply.status != 200:
                raise CrlUnavailable(f"the server answered HTTP {reply.status}",
                                     PeerReason.BAD_ANSWER)
            return reply.body
        if _loopback(urlsplit(uri).hostname):
            return self.loopback.fetch(uri, timeout_s)
        raise CrlUnavailable(f"{urlsplit(uri).hostname or uri}: name not resolved (a test "
                             "reaches only loopback and in-process CAs)")


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def without_next_update(der: bytes, ca: Issuer) -> bytes:
    """The CRL `der` with its nextUpdate taken out, signed again by `ca` (cryptography's
    builder always writes one; RFC 5280 §5.1 keeps the field OPTIONAL in the syntax)."""
    from asn1crypto import core as asn1_core
    from asn1crypto import crl as asn1_crl
    from cryptography.hazmat.primitives.asymmetric import padding

    whole = asn1_crl.CertificateList.load(der)
    tbs = whole["tbs_cert_list"]
    fields = ("version", "signature", "issuer", "this_update", "revoked_certificates",
              "crl_extensions")
    bare = asn1_crl.TbsCertList({f: tbs[f] for f in fields
                                 if not isinstance(tbs[f], asn1_core.Void)})
    signature = ca.key.sign(bare.dump(), padding.PKCS1v15(), hashes.SHA256())
    return asn1_crl.CertificateList({"tbs_cert_list": bare,
                                     "signature_algorithm": whole["signature_algorithm"],
                                     "signature": signature}).dump()
