"""openssl 3 as a relying party: it fetches our CA's CRL from the CRL distribution point of a
certificate it issued (`openssl verify -crl_check -crl_download`), before and after `ca revoke`.

The built-in CA puts `http://HOST:PORT/crl/ca.crl` (the address `ca serve` is bound to, or
`--public-url`) into every certificate it issues while serving, and serves the current CRL (DER,
application/pkix-crl) there; `ca revoke` issues a new CRL at once.
"""

from __future__ import annotations

from cryptography import x509

from tools.interop.matrix import cell
from tools.interop.support import Workspace, expect, last_lines, openssl_verify


@cell("openssl", "crl-download")
def crl_download(ws: Workspace) -> str:
    ca = ws.our_ca()
    key, csr, cert = ws.root / "r.key", ws.root / "r.csr", ws.root / "r.pem"
    made = ws.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout",
                   str(key), "-out", str(csr), "-subj", "/O=Example/CN=crl.example.com"])
    expect(made.returncode == 0, f"openssl req failed: {last_lines(made.stderr)}")
    ca.admin("sign", "--csr", str(csr), "--out", str(cert))
    issued = x509.load_pem_x509_certificate(cert.read_bytes())
    cdp = _cdp(issued)
    expect(cdp == f"{ca.direct}/crl/ca.crl",
           f"CRL distribution point {cdp!r}, expected {ca.direct}/crl/ca.crl")
    verified = openssl_verify(ws, ca.ca_pem, cert)

    def crl_check() -> tuple[int, str]:
        done = ws.run(["openssl", "verify", "-crl_check", "-crl_download", "-CAfile",
                       str(ca.ca_pem), str(cert)])
        return done.returncode, (done.stdout + done.stderr).strip()

    rc, said = crl_check()
    expect(rc == 0 and said.endswith(": OK"), f"before revoke: {last_lines(said)}")
    serial = f"{issued.serial_number:x}"
    ca.admin("revoke", serial, "--reason", "keyCompromise")
    rc, said = crl_check()
    expect(rc != 0 and "certificate revoked" in said,
           f"after ca revoke {serial}: openssl says {last_lines(said)!r}, not revoked")
    return (f"{verified}; CDP {cdp} fetched: OK before, 'certificate revoked' after "
            f"ca revoke")


def _cdp(cert: x509.Certificate) -> str:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return ""
    names = [n.value for p in points for n in (p.full_name or ())
             if isinstance(n, x509.UniformResourceIdentifier)]
    return names[0] if names else ""
