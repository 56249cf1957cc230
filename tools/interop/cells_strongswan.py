"""strongSwan 5.9.8 `pki --scep` / `pki --scepca` (Debian strongswan-pki +
libstrongswan-extra-plugins for the curl fetcher) against our CA.

5.9.8 has two known bugs (../shared/peers/README.md §3): issue #1607 tests GetCACaps with the
enum value instead of the bit (harmless here: our CA advertises every capability), and it accepts
only `rsaEncryption` as the SignerInfo algorithm of a CertRep (fixed by PR #1615). The second
is the one a PSS request can meet, if our CA answers in kind: then the cell is red with that bug
named, after checking that our CA did answer SUCCESS.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from asn1crypto import cms
from cryptography import x509

from tools.interop.matrix import cell
from tools.interop.support import (
    CHALLENGE,
    Failed,
    OurCA,
    PeerFault,
    Workspace,
    expect,
    expect_dns_name,
    last_lines,
    need,
    openssl_verify,
    peers_dir,
    subject_of,
)

BUG_1615 = ("strongSwan 5.9.8 accepts only rsaEncryption as a CertRep's SignerInfo algorithm "
            "(fixed by PR #1615, after 5.9.8)")
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
SIGNATURES = {RSA_ENCRYPTION: "rsaEncryption", "1.2.840.113549.1.1.10": "RSASSA-PSS",
              "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
              "1.2.840.113549.1.1.11": "sha256WithRSAEncryption"}


def _env() -> dict[str, str]:
    # strongswan-pki.conf: the plugin list without `tpm` (no TPM warnings), with curl
    return {**os.environ, "STRONGSWAN_CONF": str(peers_dir() / "strongswan-pki.conf")}


def pki(ws: Workspace, *args: str | Path, timeout: float = 60,
        ) -> subprocess.CompletedProcess[str]:
    need("pki")
    return ws.run(["pki", *map(str, args)], timeout=timeout, env=_env())


def new_key(ws: Workspace, name: str, size: int = 2048) -> Path:
    done = pki(ws, "--gen", "--type", "rsa", "--size", str(size), "--outform", "pem")
    expect(done.returncode == 0, f"pki --gen failed: {last_lines(done.stderr)}")
    path = ws.root / f"{name}.key"
    path.write_text(done.stdout)
    return path


def scep_args(ca: OurCA, key: Path, cn: str, *extra: str | Path,
              enc: Path | None = None, sig: Path | None = None) -> list[str | Path]:
    return ["--scep", "--url", ca.scep_url, "--in", key, "--dn", f"C=US, O=Example, CN={cn}",
            "--password", CHALLENGE, "--cacert-enc", enc or ca.ca_pem,
            "--cacert-sig", sig or ca.ca_pem, "--outform", "pem", *extra]


def enroll(ws: Workspace, ca: OurCA, cn: str, *extra: str | Path, size: int = 2048,
           **kw: Path) -> str:
    """One `pki --scep` run (a fresh RSA key of `size` bits) that must end with an issued
    certificate."""
    key = new_key(ws, cn.split(".", maxsplit=1)[0], size)
    done = pki(ws, *scep_args(ca, key, cn, *extra, **kw))
    cert = ws.root / f"{cn}.pem"
    cert.write_text(done.stdout)
    detail = issued(ws, ca, done.returncode, done.stderr, cert)
    return _with_san(cert, extra, detail)


def _with_san(cert: Path, extra: tuple[str | Path, ...], detail: str) -> str:
    """With `--san NAME` the certificate must carry it."""
    if "--san" not in extra:
        return detail
    name = str(extra[extra.index("--san") + 1])
    first, rest = detail.split("; ", 1)
    return f"{first}; {expect_dns_name(cert, name)}; {rest}"


def issued(ws: Workspace, ca: OurCA, returncode: int, stderr: str, cert: Path,
           anchor: Path | None = None) -> str:
    """Our CA answered SUCCESS, pki took the certificate, and openssl verifies it (against
    `anchor`, by default the CA certificate)."""
    reply = ca.answered("SUCCESS")
    if returncode != 0:
        why = last_lines(stderr)
        if reply.signature_oid != RSA_ENCRYPTION and ("only RSA digest encryption" in stderr
                                                      or "unable to verify PKCS#7" in stderr):
            _signature_verifies(ws, ca)  # ours must be right before the peer is blamed
            raise PeerFault(f"our CA answered SUCCESS signed with {reply.signature_oid} "
                            f"(openssl cms -verify: OK); pki: {why}", BUG_1615)
        raise Failed(f"pki refused our SUCCESS CertRep: {why} ({ca.proxy.summary()}; "
                     f"{_enveloped_to(ca)})")
    verified = openssl_verify(ws, anchor or ca.ca_pem, cert)
    signed = SIGNATURES.get(reply.signature_oid, reply.signature_oid)
    return f"issued {subject_of(cert)}; {verified}; CertRep signed {signed}; " \
           f"{ca.proxy.summary()}"


@cell("strongswan", "no-san")
def no_san(ws: Workspace) -> str:
    return enroll(ws, ws.our_ca(), "s1.example.com")


@cell("strongswan", "san")
def san(ws: Workspace) -> str:
    # Its CSR attributes come in BER (not DER) SET OF order: issue 13 item 1.
    return enroll(ws, ws.our_ca(), "s2.example.com", "--san", "s2.example.com")


@cell("strongswan", "san-manual")
def san_manual(ws: Workspace) -> str:
    return _manual(ws, "s3.example.com", "--san", "s3.example.com")


@cell("strongswan", "des3")
def des3(ws: Workspace) -> str:
    return enroll(ws, ws.our_ca(), "s4.example.com", "--cipher", "des3")


@cell("strongswan", "sha1")
def sha1(ws: Workspace) -> str:
    return enroll(ws, ws.our_ca(), "s5.example.com", "--digest", "sha1")


@cell("strongswan", "sha384")
def sha384(ws: Workspace) -> str:
    return enroll(ws, ws.our_ca(), "s6.example.com", "--digest", "sha384")


@cell("strongswan", "sha512")
def sha512(ws: Workspace) -> str:
    return enroll(ws, ws.our_ca(), "s7.example.com", "--digest", "sha512")


@cell("strongswan", "rsa4096")
def rsa4096(ws: Workspace) -> str:
    # pki --scep takes RSA keys only (its --in is "RSA private key input file"): no EC cell.
    return enroll(ws, ws.our_ca(), "s14.example.com", size=4096)


@cell("strongswan", "des3-strict")
def des3_strict(ws: Workspace) -> str:
    return _refused_alg(ws, "s12.example.com", "--cipher", "des3")


@cell("strongswan", "sha1-strict")
def sha1_strict(ws: Workspace) -> str:
    return _refused_alg(ws, "s13.example.com", "--digest", "sha1")


@cell("strongswan", "pss")
def pss(ws: Workspace) -> str:
    # SignerInfo with id-RSASSA-PSS and parameters: issue 13 item 4.
    return enroll(ws, ws.our_ca(), "s8.example.com", "--rsa-padding", "pss")


@cell("strongswan", "renewal")
def renewal(ws: Workspace) -> str:
    ca = ws.our_ca()
    first = enroll(ws, ca, "s9.example.com")
    old_cert, old_key = ws.root / "s9.example.com.pem", ws.root / "s9.key"
    new = new_key(ws, "s9-new")
    done = pki(ws, "--scep", "--url", ca.scep_url, "--in", new, "--cert", old_cert,
               "--key", old_key, "--dn", "C=US, O=Example, CN=s9.example.com",
               "--cacert-enc", ca.ca_pem, "--cacert-sig", ca.ca_pem, "--outform", "pem")
    cert = ws.root / "s9-renewed.pem"
    cert.write_text(done.stdout)
    detail = issued(ws, ca, done.returncode, done.stderr, cert)
    expect(ca.message_types() == ["PKCSReq", "RenewalReq"],
           f"expected PKCSReq then RenewalReq, saw {ca.message_types()}")
    expect(_serial(cert) != _serial(old_cert), "the renewal returned the old certificate")
    return f"renewed ({first.split(';')[0]}); {detail}"


@cell("strongswan", "manual-certpoll")
def manual_certpoll(ws: Workspace) -> str:
    return _manual(ws, "s10.example.com")


@cell("strongswan", "ra-mode")
def ra_mode(ws: Workspace) -> str:
    ca = ws.our_ca(ra=True)
    got = ws.path("scepca")
    done = pki(ws, "--scepca", "--url", ca.scep_url, "--caout", got / "ca.pem", "--outform",
               "pem")
    expect(done.returncode == 0, f"pki --scepca failed: {last_lines(done.stderr)}")
    enc, sig = _ra_roles(sorted(got.glob("ca-ra*.pem")))
    return enroll(ws, ca, "s11.example.com", "--cacert", ca.ca_pem, enc=enc, sig=sig)


@cell("strongswan", "scepca")
def scepca(ws: Workspace) -> str:
    ca = ws.our_ca()
    got = ws.path("scepca")
    done = pki(ws, "--scepca", "--url", ca.scep_url, "--caout", got / "ca.pem", "--outform",
               "pem")
    expect(done.returncode == 0, f"pki --scepca failed: {last_lines(done.stderr)}")
    expect(_der(got / "ca.pem") == _der(ca.ca_pem),
           "pki --scepca wrote a different certificate than the CA's")
    return f"CA certificate {subject_of(ca.ca_pem)} fetched, identical to ca.pem"


def _scepca(ws: Workspace, ca: OurCA, differs: str) -> Path:
    """`pki --scepca` against `ca`: the directory it wrote into, once it holds the CA's
    current certificate as ca.pem (`differs` says otherwise)."""
    got = ws.path("scepca")
    done = pki(ws, "--scepca", "--url", ca.scep_url, "--caout", got / "ca.pem", "--outform",
               "pem")
    expect(done.returncode == 0, f"pki --scepca failed: {last_lines(done.stderr)}")
    expect(_der(got / "ca.pem") == _der(ca.ca_pem), differs)
    return got


@cell("strongswan", "scepca-ra")
def scepca_ra(ws: Workspace) -> str:
    ca = ws.our_ca(ra=True)
    got = _scepca(ws, ca, "pki --scepca wrote a different CA certificate than the CA's")
    ras = sorted(got.glob("ca-ra*.pem"))
    expect(len(ras) == 2, f"expected 2 RA certificates, pki wrote {len(ras)}")
    for ra in ras:
        openssl_verify(ws, ca.ca_pem, ra)
    return (f"CA + RA certificates fetched ({', '.join(subject_of(r) for r in ras)}); "
            "openssl verify OK")


@cell("strongswan", "rollover")
def rollover(ws: Workspace) -> str:
    """A CA that rolled over: pki --scepca still gets the current CA certificate; a client
    that envelopes to the next one (from GetNextCACert, which pki cannot ask for) and checks
    the CertRep against it is answered by, and issued under, the next certificate."""
    ca = ws.our_ca(rollover=True)
    _scepca(ws, ca, "pki --scepca did not get the current CA certificate after a rollover")
    nxt = ws.path("next") / "ca-2.pem"
    nxt.write_bytes(ca.next_ca_pem())
    expect(_der(nxt) == _der(ca.dir / "ca-2.pem"),
           "GetNextCACert did not answer the next CA certificate (DIR/ca-2.pem)")
    key = new_key(ws, "s15")
    done = pki(ws, *scep_args(ca, key, "s15.example.com", enc=nxt, sig=nxt))
    cert = ws.root / "s15.example.com.pem"
    cert.write_text(done.stdout)
    detail = issued(ws, ca, done.returncode, done.stderr, cert, anchor=nxt)
    old = ws.run(["openssl", "verify", "-CAfile", str(ca.ca_pem), str(cert)])
    expect(old.returncode != 0, "the shadow enrollment was issued under the current CA "
                                "certificate, not the next one")
    return f"scepca: current CA; GetNextCACert: ca-2.pem; enveloped to it: {detail}"


@cell("strongswan", "rollover-renewal")
def rollover_renewal(ws: Workspace) -> str:
    """During a rollover a device renews its certificate (issued under the current CA) with a
    RenewalReq enveloped to the next CA certificate: issued under the next one."""
    ca = ws.our_ca(rollover=True)
    first = enroll(ws, ca, "s16.example.com")
    nxt = ws.path("next") / "ca-2.pem"
    nxt.write_bytes(ca.next_ca_pem())
    new = new_key(ws, "s16-new")
    done = pki(ws, "--scep", "--url", ca.scep_url, "--in", new,
               "--cert", ws.root / "s16.example.com.pem", "--key", ws.root / "s16.key",
               "--dn", "C=US, O=Example, CN=s16.example.com", "--cacert-enc", nxt,
               "--cacert-sig", nxt, "--cacert", ca.ca_pem, "--outform", "pem")
    cert = ws.root / "s16-renewed.pem"
    cert.write_text(done.stdout)
    detail = issued(ws, ca, done.returncode, done.stderr, cert, anchor=nxt)
    expect(ca.message_types() == ["PKCSReq", "RenewalReq"],
           f"expected PKCSReq then RenewalReq, saw {ca.message_types()}")
    old = ws.run(["openssl", "verify", "-CAfile", str(ca.ca_pem), str(cert)])
    expect(old.returncode != 0, "the renewal enveloped to the next CA certificate was issued "
                                "under the current one")
    return f"enrolled under CA 1 ({first.split(';')[0]}); renewed under CA 2: {detail}"


# -- helpers ---------------------------------------------------------------------------------


def _manual(ws: Workspace, cn: str, *extra: str) -> str:
    """PENDING, CertPolls every second, `ca approve`, then the certificate."""
    ca = ws.our_ca(approval="manual")
    key = new_key(ws, cn.split(".", maxsplit=1)[0])
    cert = ws.root / f"{cn}.pem"
    log = ws.root / "pki.log"
    proc = ws.start(["pki", *map(str, scep_args(ca, key, cn, *extra, "--interval", "1",
                                                  "--maxpolltime", "60"))],
                    log, env=_env(), stdout=cert)
    txid = ca.pending(cn)
    ca.admin("approve", txid)
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    expect(proc.returncode is not None, "pki was still polling 30 s after the approval")
    detail = _with_san(cert, extra, issued(ws, ca, proc.returncode or 0,
                                           log.read_text(errors="replace"), cert))
    types = ca.message_types()
    expect(types[:1] == ["PKCSReq"] and "CertPoll" in types,
           f"expected PKCSReq then CertPolls, saw {types}")
    return f"approved {txid[:8]}...; {detail}"


def _signature_verifies(ws: Workspace, ca: OurCA) -> None:
    """openssl checks the signature of our last CertRep (whatever its algorithm)."""
    der = ws.root / "certrep.der"
    der.write_bytes(ca.proxy.operations()[-1].body)
    done = ws.run(["openssl", "cms", "-verify", "-noverify", "-binary", "-inform", "DER",
                   "-in", str(der), "-out", str(ws.root / "certrep.content")])
    expect(done.returncode == 0, f"openssl cms -verify refuses our CertRep's signature: "
                                 f"{last_lines(done.stderr)}")


def _enveloped_to(ca: OurCA) -> str:
    """Whom our last CertRep's envelope names (RecipientInfo issuerAndSerialNumber, the serial
    as its DER contents octets): what to compare with the request's signer when pki cannot
    decrypt it."""
    try:
        signed = cms.ContentInfo.load(ca.proxy.operations()[-1].body)["content"]
        enveloped = cms.ContentInfo.load(signed["encap_content_info"]["content"].native)
        rid = enveloped["content"]["recipient_infos"][0].chosen["rid"].chosen
        serial = rid["serial_number"].contents.hex().upper()
        return f"enveloped to {rid['issuer'].human_friendly} serial DER {serial}"
    except (ValueError, KeyError, IndexError, TypeError) as e:
        return f"envelope unreadable: {e}"


def _refused_alg(ws: Workspace, cn: str, *extra: str) -> str:
    """`ca serve --strict` refuses DES, 3DES and SHA-1: FAILURE badAlg (RFC 8894 §3.2.1.4),
    and pki says so."""
    ca = ws.our_ca(strict=True)
    key = new_key(ws, cn.split(".", maxsplit=1)[0])
    done = pki(ws, *scep_args(ca, key, cn, *extra))
    ca.answered("FAILURE", "badAlg")
    expect(done.returncode != 0 and "badAlg" in done.stderr,
           f"pki did not report badAlg: {last_lines(done.stderr)}")
    return f"FAILURE badAlg, pki says so; {ca.proxy.summary()}"


def _ra_roles(ras: list[Path]) -> tuple[Path, Path]:
    """(encryption, signing) among the RA certificates, by key usage."""
    expect(len(ras) == 2, f"expected 2 RA certificates from pki --scepca, got {len(ras)}")
    enc = sig = None
    for path in ras:
        ku = x509.load_pem_x509_certificate(path.read_bytes()).extensions.get_extension_for_class(
            x509.KeyUsage).value
        if ku.key_encipherment:
            enc = path
        elif ku.digital_signature:
            sig = path
    if enc is None or sig is None:
        raise Failed("the RA certificates do not split into encryption and signing by key usage")
    return enc, sig


def _der(pem: Path) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(Encoding.DER)


def _serial(pem: Path) -> int:
    return x509.load_pem_x509_certificate(pem.read_bytes()).serial_number
