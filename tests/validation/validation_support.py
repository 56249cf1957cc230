"""Certificates and CRLs made on the spot for validation tests: a root, an intermediate and
leaves with chosen extensions, keys, validity and signature hashes, and CRLs over them."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
AT = T0 + dt.timedelta(days=30)
AT_US = int(AT.timestamp()) * 1_000_000
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
IPSEC_IKE = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.17")


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def key(kind: str = "ec") -> Key:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind.startswith("rsa"):
        return rsa.generate_private_key(65537, int(kind[3:] or 2048))
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Spec:
    """What one certificate holds (defaults: a well-formed CA or end entity)."""

    cn: str
    ca: bool = False
    bc: bool = True  # basicConstraints present
    path_length: int | None = None
    ku: x509.KeyUsage | bool | None = True  # True: the usual one for a CA / an end entity
    eku: Sequence[x509.ObjectIdentifier] | None = None
    dns: Sequence[str] = ()
    ips: Sequence[str] = ()
    emails: Sequence[str] = ()
    cdp: Sequence[str] = ()
    not_before: dt.datetime = T0
    not_after: dt.datetime = T0 + dt.timedelta(days=365)
    critical_unknown: bool = False
    serial: int = 0
    extra: list[x509.ExtensionType] = field(default_factory=list)


CA_KU = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
EE_KU = x509.KeyUsage(True, False, True, False, False, False, False, False, False)


def issue(spec: Spec, k: Key, issuer: tuple[x509.Certificate, Key] | None = None,
          digest: hashes.HashAlgorithm | None = None) -> x509.Certificate:
    iname, ikey = (issuer[0].subject, issuer[1]) if issuer else (name(spec.cn), k)
    b = (x509.CertificateBuilder().subject_name(name(spec.cn)).issuer_name(iname)
         .public_key(k.public_key())
         .serial_number(spec.serial or x509.random_serial_number())
         .not_valid_before(spec.not_before).not_valid_after(spec.not_after))
    if spec.bc:
        b = b.add_extension(x509.BasicConstraints(spec.ca, spec.path_length), critical=True)
    if spec.ku is True:
        b = b.add_extension(CA_KU if spec.ca else EE_KU, critical=True)
    elif isinstance(spec.ku, x509.KeyUsage):
        b = b.add_extension(spec.ku, critical=True)
    if spec.eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(list(spec.eku)), critical=False)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in spec.ips]
    sans += [x509.RFC822Name(e) for e in spec.emails]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if spec.cdp:
        b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(u) for u in spec.cdp], None, None, None)]),
            critical=False)
    if spec.critical_unknown:
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99.1"),
                                                       b"\x05\x00"), critical=True)
    for ext in spec.extra:
        b = b.add_extension(ext, critical=False)
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()),
                        critical=False)
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
        ikey.public_key()), critical=False)  # type: ignore[arg-type]
    if isinstance(ikey, ed25519.Ed25519PrivateKey):
        return b.sign(ikey, None)
    return b.sign(ikey, digest or hashes.SHA256())


@dataclass
class Pki:
    """A root, an intermediate under it, and leaves made from specs."""

    root: x509.Certificate
    root_key: Key
    inter: x509.Certificate
    inter_key: Key

    @classmethod
    def make(cls, prefix: str = "Test", kind: str = "ec", cdp: Sequence[str] = ()) -> Pki:
        rk, ik = key(kind), key(kind)
        root = issue(Spec(f"{prefix} Root", ca=True, not_after=T0 + dt.timedelta(days=3650)),
                     rk)
        inter = issue(Spec(f"{prefix} Issuing CA", ca=True, cdp=cdp,
                           not_after=T0 + dt.timedelta(days=1825)), ik, (root, rk))
        return cls(root, rk, inter, ik)

    def leaf(self, spec: Spec | None = None, kind: str = "ec",
             digest: hashes.HashAlgorithm | None = None) -> x509.Certificate:
        return issue(spec or Spec("peer.example", dns=["peer.example"]), key(kind),
                     (self.inter, self.inter_key), digest)

    def chain(self, leaf: x509.Certificate) -> list[x509.Certificate]:
        return [leaf, self.inter]


def crl(issuer: x509.Certificate, issuer_key: Key, revoked: Sequence[tuple[int, dt.datetime]],
        this_update: dt.datetime = T0, next_update: dt.datetime | None = None,
        number: int = 1) -> bytes:
    """A complete CRL by `issuer` listing (serial, revocationDate) pairs, DER."""
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
         .last_update(this_update)
         .next_update(next_update or this_update + dt.timedelta(days=60))
         .add_extension(x509.CRLNumber(number), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             issuer_key.public_key()), critical=False))  # type: ignore[arg-type]
    for serial, when in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(when).build())
    return b.sign(issuer_key, hashes.SHA256()).public_bytes(  # type: ignore[arg-type]
        serialization.Encoding.DER)


def pem(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


EKU = ExtendedKeyUsageOID


# -- revocation: CDPs and CRLs around the moment validated ------------------------------------

LEAF_CDP = "http://127.0.0.1/crl/issuing.crl"
INTER_CDP = "http://127.0.0.1/crl/root.crl"
DAY_US = 86_400_000_000


def good_crl(issuer: x509.Certificate, k: Key, **kw: object) -> bytes:
    """A complete CRL by `issuer`, current at AT (thisUpdate a day before, nextUpdate a week
    after), with crl_support.CrlSpec's fields changed by `kw`."""
    from tests.support.crl_support import CrlSpec, Issuer, make_crl

    spec = CrlSpec(this_update=AT_US - DAY_US, next_update=AT_US + 7 * DAY_US)
    for field_name, value in kw.items():
        setattr(spec, field_name, value)
    return make_crl(Issuer(k, issuer), spec)  # type: ignore[arg-type]


def leaf_of(pki: Pki, serial: int = 0) -> x509.Certificate:
    """peer.example, its CRL distribution point LEAF_CDP."""
    return pki.leaf(Spec("peer.example", dns=["peer.example"], cdp=[LEAF_CDP], serial=serial))


# -- a SHA-1 signature (cryptography will not make one: the DER is re-signed by hand) ---------

_SHA256_RSA = bytes.fromhex("2a864886f70d01010b")  # sha256WithRSAEncryption's OID content
_SHA1_RSA = bytes.fromhex("2a864886f70d010105")  # sha1WithRSAEncryption's: the same length


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def _parts(seq: bytes) -> list[bytes]:
    """The elements (whole TLVs) inside one DER SEQUENCE."""
    def header(pos: int) -> tuple[int, int]:
        first = seq[pos + 1]
        if first < 0x80:
            return pos + 2, first
        k = first & 0x7F
        return pos + 2 + k, int.from_bytes(seq[pos + 2:pos + 2 + k], "big")

    out, (pos, _) = [], header(0)
    while pos < len(seq):
        start, length = header(pos)
        out.append(seq[pos:start + length])
        pos = start + length
    return out


def resigned_sha1(cert: x509.Certificate, issuer_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """`cert` (signed sha256WithRSAEncryption by `issuer_key`) signed again with SHA-1."""
    from cryptography.hazmat.primitives.asymmetric import padding

    tbs, algorithm, _ = _parts(der(cert))
    tbs, algorithm = tbs.replace(_SHA256_RSA, _SHA1_RSA), algorithm.replace(_SHA256_RSA,
                                                                              _SHA1_RSA)
    signature = issuer_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    return x509.load_der_x509_certificate(_tlv(0x30, tbs + algorithm +
                                               _tlv(0x03, b"\x00" + signature)))
