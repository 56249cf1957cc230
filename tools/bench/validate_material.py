"""The material of validate_bench.py, built once into a cache directory and reused.

    ROOTS roots (the trustpool), of which HIERARCHIES each have one issuing CA (intermediate);
    CHAINS leaves spread round-robin over the issuing CAs (3-level chains: leaf, issuing CA,
    root); one CRL per CA of a hierarchy (its root's and its issuing CA's), each of ENTRIES
    entries: random serials, plus REVOKED_EVERY-th leaf of each issuing CA (so both sides
    must find those, and agree on how many chains fail).

RSA-2048 keys and SHA-256 signatures for the hierarchies (a router PKI's usual choice),
ECDSA P-256 for the roots that anchor nothing (they only fill the pool). Every leaf has the
same key (a leaf's key is not used to validate it) and its own serial and name; its CRL
distribution point names its issuing CA's CRL (http://127.0.0.1/crl/<n>.crl, served by
nobody: the bench hands the bytes to the engine's CRL port).

CRLs are encoded here directly (DER, RFC 5280 §5.1), not through cryptography's CRL builder,
which copies its list at each added entry (100,000 entries: 28 s each). The header and
extensions (cRLNumber, authorityKeyIdentifier) come from a one-entry CRL that cryptography
builds and signs; the list of entries is spliced in and the result signed again.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

ROOTS = 150
HIERARCHIES = 10
CHAINS = 10_000
ENTRIES = 100_000
REVOKED_EVERY = 100
FORMAT = 1  # bump when the material changes

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)  # the moment every chain is validated at


@dataclass(frozen=True)
class Material:
    root: Path

    @property
    def roots_pem(self) -> Path:
        return self.root / "roots.pem"

    @property
    def inters_pem(self) -> Path:
        return self.root / "inters.pem"

    @property
    def crls_pem(self) -> Path:
        return self.root / "crls.pem"

    def crl_der(self, kind: str, n: int) -> Path:
        return self.root / "crl" / f"{kind}{n}.crl"

    def leaf_pem(self, i: int) -> Path:
        return self.root / "leaf" / f"{i:05d}.pem"

    def leaf_names(self) -> list[str]:
        return [f"leaf/{i:05d}.pem" for i in range(CHAINS)]

    @property
    def manifest(self) -> dict[str, int]:
        data: dict[str, int] = json.loads((self.root / "manifest.json").read_text())
        return data


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def crl_uri(n: int) -> str:
    return f"http://127.0.0.1/crl/inter{n}.crl"


def root_crl_uri(n: int) -> str:
    return f"http://127.0.0.1/crl/root{n}.crl"


def build(cache: Path, say: callable[[str], None] = print) -> Material:  # type: ignore[valid-type]
    m = Material(cache / f"validate-v{FORMAT}-{ROOTS}-{HIERARCHIES}-{CHAINS}-{ENTRIES}")
    if (m.root / "manifest.json").exists():
        return m
    (m.root / "leaf").mkdir(parents=True, exist_ok=True)
    (m.root / "crl").mkdir(exist_ok=True)
    rng = random.Random(16)
    say(f"building the material in {m.root} (once) ...")
    roots, root_keys = [], []
    for i in range(ROOTS):
        k = rsa.generate_private_key(65537, 2048) if i < HIERARCHIES else \
            ec.generate_private_key(ec.SECP256R1())
        roots.append(_ca(name(f"Bench Root {i}"), k, None, None, root_crl_uri(i)
                         if i < HIERARCHIES else None))
        root_keys.append(k)
    inters, inter_keys = [], []
    for n in range(HIERARCHIES):
        k = rsa.generate_private_key(65537, 2048)
        inters.append(_ca(name(f"Bench Issuing CA {n}"), k, roots[n], root_keys[n],
                          root_crl_uri(n)))
        inter_keys.append(k)
    leaf_key = rsa.generate_private_key(65537, 2048)
    revoked: list[list[int]] = [[] for _ in range(HIERARCHIES)]
    for i in range(CHAINS):
        n = i % HIERARCHIES
        serial = rng.getrandbits(63) | (1 << 62)
        cert = _leaf(i, serial, leaf_key, inters[n], inter_keys[n], crl_uri(n))
        m.leaf_pem(i).write_bytes(cert.public_bytes(serialization.Encoding.PEM) +
                                  inters[n].public_bytes(serialization.Encoding.PEM))
        if (i // HIERARCHIES) % REVOKED_EVERY == 0:
            revoked[n].append(serial)
        if i % 2000 == 1999:
            say(f"  {i + 1} leaves")
    crls = []
    for n in range(HIERARCHIES):
        for kind, issuer, k, listed in (("inter", inters[n], inter_keys[n], revoked[n]),
                                        ("root", roots[n], root_keys[n], [])):
            der = _crl(issuer, k, listed, rng)
            m.crl_der(kind, n).write_bytes(der)
            crls.append(der)
        say(f"  CRLs of hierarchy {n}")
    m.roots_pem.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in roots))
    m.inters_pem.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM)
                                      for c in inters))
    m.crls_pem.write_bytes(b"".join(
        x509.load_der_x509_crl(d).public_bytes(serialization.Encoding.PEM) for d in crls))
    (m.root / "manifest.json").write_text(json.dumps({
        "roots": ROOTS, "hierarchies": HIERARCHIES, "chains": CHAINS, "entries": ENTRIES,
        "revoked_leaves": sum(len(r) for r in revoked)}))
    return m


def _ca(subject: x509.Name, k: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        issuer: x509.Certificate | None, issuer_key: rsa.RSAPrivateKey | None,
        cdp: str | None) -> x509.Certificate:
    signer = issuer_key or k
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer.subject if issuer else subject).public_key(k.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(START).not_valid_after(START + dt.timedelta(days=3650))
         .add_extension(x509.BasicConstraints(True, None), critical=True)
         .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                      False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), False))
    if issuer is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            signer.public_key()), False)  # type: ignore[arg-type]
        if cdp:
            b = b.add_extension(_cdp(cdp), False)
    return b.sign(signer, hashes.SHA256())


def _cdp(uri: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint(
        [x509.UniformResourceIdentifier(uri)], None, None, None)])


def _leaf(i: int, serial: int, k: rsa.RSAPrivateKey, issuer: x509.Certificate,
          issuer_key: rsa.RSAPrivateKey, cdp: str) -> x509.Certificate:
    host = f"peer{i:05d}.bench.example"
    return (x509.CertificateBuilder().subject_name(name(host)).issuer_name(issuer.subject)
            .public_key(k.public_key()).serial_number(serial)
            .not_valid_before(START).not_valid_after(START + dt.timedelta(days=730))
            .add_extension(x509.BasicConstraints(False, None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False,
                                         False, False), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_key.public_key()), False)
            .add_extension(_cdp(cdp), False)
            .sign(issuer_key, hashes.SHA256()))


# -- a CRL of many entries, in DER --------------------------------------------------------------


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def _integer(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))


def _elements(der: bytes) -> list[bytes]:
    """The elements inside one DER SEQUENCE, each whole (tag, length, content)."""
    out, pos = [], _header_end(der, 0)
    while pos < len(der):
        end = _header_end(der, pos) + _length(der, pos)
        out.append(der[pos:end])
        pos = end
    return out


def _length(der: bytes, pos: int) -> int:
    first = der[pos + 1]
    if first < 0x80:
        return first
    k = first & 0x7F
    return int.from_bytes(der[pos + 2:pos + 2 + k], "big")


def _header_end(der: bytes, pos: int) -> int:
    first = der[pos + 1]
    return pos + 2 + (first & 0x7F if first >= 0x80 else 0)


def _crl(issuer: x509.Certificate, k: rsa.RSAPrivateKey, listed: list[int],
         rng: random.Random) -> bytes:
    template = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
                .last_update(START).next_update(START + dt.timedelta(days=365))
                .add_extension(x509.CRLNumber(1), False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    k.public_key()), False)
                .sign(k, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    tbs_der, algorithm, _ = _elements(template)
    version, sig, iss, this, nxt, exts = _elements(tbs_der)
    when = _tlv(0x17, b"251201000000Z")
    serials = list(listed) + [rng.getrandbits(63) | (1 << 62)
                              for _ in range(ENTRIES - len(listed))]
    entries = b"".join(_tlv(0x30, _integer(s) + when) for s in serials)
    tbs = _tlv(0x30, version + sig + iss + this + nxt + _tlv(0x30, entries) + exts)
    signature = k.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    return _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signature))
