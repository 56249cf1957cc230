"""Helpers for the trustpoint tests: one clock shared by the device and the built-in CA, keys
generated once per process, and a device set up the way the reference example session does.

The device engine runs on a `FakeClock`; the CA reads the same clock (one Clock port), so a
certificate the CA issues "now" is valid "now" on the device, and advancing the clock moves both.
"""

from __future__ import annotations

import base64
import functools
import subprocess
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca.decide import Approval
from engine.ca.server import CAServer, InProcessCA, serve, serve_in_process
from engine.ca.service import BuiltinCA
from engine.engine import Result
from engine.keys import KeySpec
from engine.keystore import KeyPool
from engine.ports import Clock, FakeClock, SeededRandomness
from engine.ports import PrivateKey as CAPrivateKey
from engine.scep_client import HttpReply, ScepTransport
from engine.trustpoints import TrustpointStatus, status_of

T0_US = FakeClock().us  # 2025-11-27 00:00:00 UTC
KEY_BITS = 2048
HOSTNAME = "myrouter"
DOMAIN = "mydomain.com"
CHALLENGE = "cisco123"


# -- keys ------------------------------------------------------------------------------------------


@functools.cache
def rsa_key(index: int, bits: int = KEY_BITS) -> rsa.RSAPrivateKey:
    """Key number `index`, made once per process (RSA generation is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def device_pool(first: int = 0, count: int = 3) -> KeyPool:
    """A fresh pool over keys `first`..: every engine gets the same keys, in order."""
    return KeyPool([rsa_key(i) for i in range(first, first + count)])


class CAKeys:
    """The built-in CA's KeyFactory: process-cached keys 100, 101, ... (CA, then RA keys)."""

    def __init__(self, base: int = 100) -> None:
        self.next = base

    def generate(self, spec: KeySpec) -> CAPrivateKey:
        self.next += 1
        return rsa_key(self.next, spec.size)


def make_ca(root: Path, clock: FakeClock, *, seed: int = 7, base: int = 100,
            subject: str = "CN=trustledger test CA,O=Example", **kw: object) -> BuiltinCA:
    return BuiltinCA.init(root, subject=subject, clock=clock,
                          randomness=SeededRandomness(seed), keys=CAKeys(base),
                          **kw)  # type: ignore[arg-type]


class CAFactory:
    """Builds built-in CAs on the shared clock and serves them, to the devices' in-process
    transport (`http=True`: over real loopback HTTP); everything stops at teardown."""

    def __init__(self, root: Path, clock: FakeClock, network: InProcessTransport) -> None:
        self.root = root
        self.clock = clock
        self.network = network
        self.cas: list[BuiltinCA] = []
        self.servers: list[CAServer | InProcessCA] = []

    def __call__(self, approval: Approval = Approval.AUTO, *, name: str = "ca",
                 challenge: str | None = None, http: bool = False,
                 **kw: Any) -> tuple[BuiltinCA, Any]:
        ca = make_ca(self.root / name, self.clock, **kw)
        self.cas.append(ca)
        server: CAServer | InProcessCA
        if http:
            server = serve(ca, approval=approval, challenge=challenge, admin=False,
                           crl_check_interval=3600)
        else:
            server = serve_in_process(ca, self.network, f"http://{name}.invalid",
                                      approval=approval, challenge=challenge)
        self.servers.append(server)
        return ca, server

    def close(self) -> None:
        for s in self.servers:
            s.stop()
        for ca in self.cas:
            ca.close()


# -- the device ------------------------------------------------------------------------------------


def open_device(root: Path, clock: Clock, *, first_key: int = 0,
                use_snapshots: bool = True) -> Engine:
    e = Engine.open(root, clock=clock, user="tester", use_snapshots=use_snapshots)
    e.ports.keygen = device_pool(first_key)
    return e


def run(e: Engine, *lines: str) -> list[Result]:
    """Run config lines; each must succeed."""
    results = []
    for line in lines:
        r = e.execute(line)
        assert r.ok, (line, r.output)
        results.append(r)
    return results


def configure(e: Engine, *lines: str) -> None:
    """Enter configuration mode, run `lines`, commit, back to exec."""
    run(e, "configure", *lines, "commit", "end")


def identity_and_key(e: Engine, *, usage_keys: bool = False, label: str = "mykey") -> None:
    configure(e, f"hostname {HOSTNAME}", f"domain name {DOMAIN}")
    usage = " usage-keys" if usage_keys else ""
    answers = [str(KEY_BITS)] * (2 if usage_keys else 1)
    r = e.execute(f"crypto key generate rsa{usage} {label}", answers=answers)
    assert r.ok, r.output


def declare(e: Engine, name: str = "myca", *, url: str | None = None, terminal: bool = False,
            period: int = 2, count: int = 25, label: str = "mykey", extra: Iterable[str] = ()
            ) -> None:
    lines = [f"crypto ca trustpoint {name}"]
    if url is not None:
        lines.append(f"enrollment url {url}")
    if terminal:
        lines.append("enrollment terminal")
    lines += [f"enrollment retry count {count}", f"enrollment retry period {period}",
              f"rsakeypair {label}", *extra]
    configure(e, *lines)


def authenticate(e: Engine, name: str = "myca", answer: str = "yes",
                 pasted: Iterable[str] | None = None) -> Result:
    answers = [*(pasted if pasted is not None else ()), answer]
    return e.execute(f"crypto ca authenticate {name}", answers=answers)


def enroll(e: Engine, name: str = "myca", password: str = CHALLENGE,
           again: str | None = None) -> Result:
    return e.execute(f"crypto ca enroll {name}",
                     answers=[password, password if again is None else again])


def status(e: Engine, name: str = "myca") -> TrustpointStatus:
    return status_of(e.state, name)


def event_types(r: Result) -> list[str]:
    return [type(rec.event).__name__ for rec in r.events]


def pem_lines(der: bytes, kind: str = "CERTIFICATE") -> list[str]:
    """A pasted PEM block, line by line, ending with the blank line that ends a paste."""
    body = textwrap.wrap(base64.b64encode(der).decode(), 64)
    return [f"-----BEGIN {kind}-----", *body, f"-----END {kind}-----", ""]


def printed_requests(output: str) -> list[bytes]:
    """The PKCS#10 requests `crypto ca enroll` printed for cut-and-paste, as DER."""
    found: list[bytes] = []
    body: list[str] = []
    inside = False
    for line in output.splitlines():
        if line == "-----BEGIN CERTIFICATE REQUEST-----":
            inside, body = True, []
        elif line == "-----END CERTIFICATE REQUEST-----":
            inside = False
            found.append(base64.b64decode("".join(body)))
        elif inside:
            body.append(line)
    return found


# -- certificates made outside the CA --------------------------------------------------------------


def self_signed_ca(key: rsa.RSAPrivateKey, cn: str, now_us: int = T0_US,
                   days: int = 3650) -> x509.Certificate:
    now = datetime.fromtimestamp(now_us / 1e6, UTC)
    name = x509.Name.from_rfc4514_string(f"CN={cn},O=Elsewhere")
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0x5EED)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def issue(ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate, public_key: rsa.RSAPublicKey,
          subject: x509.Name, not_before: datetime, not_after: datetime,
          serial: int = 0x1234, *, ca: bool = False) -> x509.Certificate:
    """An end-entity certificate signed by `ca_key` (for cases the real CAs would not make);
    `ca`: a CA certificate instead (basicConstraints cA TRUE)."""
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(public_key).serial_number(serial)
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))


def backwards(cert: x509.Certificate, ca_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """`cert` with its notBefore and notAfter swapped, signed again by `ca_key`: a period
    that ends before it begins (cryptography's builder refuses to make one; a broken CA
    need not)."""
    from asn1crypto import x509 as asn1
    from cryptography.hazmat.primitives.asymmetric import padding

    parsed = asn1.Certificate.load(der(cert))
    tbs = parsed["tbs_certificate"]
    period = tbs["validity"]
    tbs["validity"] = asn1.Validity({
        "not_before": asn1.Time({"utc_time": period["not_after"].native}),
        "not_after": asn1.Time({"utc_time": period["not_before"].native})})
    signed = ca_key.sign(tbs.dump(force=True), padding.PKCS1v15(), hashes.SHA256())
    parsed["signature_value"] = signed
    return x509.load_der_x509_certificate(parsed.dump(force=True))


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def openssl(*args: str, cwd: Path) -> str:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


# -- a scripted SCEP transport (pure bad-peer cases) -----------------------------------------------


@dataclass
class ScriptedTransport:
    """A `ScepTransport` answering from a script: `replies[operation]` is an HttpReply or a
    function (params, body) -> HttpReply; operations it has no answer for raise."""

    replies: Mapping[str, object]
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def _answer(self, params: Mapping[str, str], body: bytes) -> HttpReply:
        op = params.get("operation", "")
        self.seen.append((op, dict(params), body))
        got = self.replies[op]
        if isinstance(got, HttpReply):
            return got
        assert callable(got)
        reply = got(dict(params), body)
        assert isinstance(reply, HttpReply)
        return reply

    def get(self, url: str, params: Mapping[str, str]) -> HttpReply:
        return self._answer(params, b"")

    def post(self, url: str, params: Mapping[str, str], body: bytes) -> HttpReply:
        return self._answer(params, body)


class RecordingTransport:
    """A transport (`inner`, default: the real HTTP one) keeping every exchange: (operation,
    request body, reply)."""

    def __init__(self, inner: ScepTransport | None = None) -> None:
        from engine.scep_client import HttpxTransport

        self.inner = inner if inner is not None else HttpxTransport(timeout=10)
        self.exchanges: list[tuple[str, bytes, HttpReply]] = []

    def get(self, url: str, params: Mapping[str, str]) -> HttpReply:
        reply = self.inner.get(url, params)
        self.exchanges.append((params.get("operation", ""), b"", reply))
        return reply

    def post(self, url: str, params: Mapping[str, str], body: bytes) -> HttpReply:
        reply = self.inner.post(url, params, body)
        self.exchanges.append((params.get("operation", ""), body, reply))
        return reply

    def operations(self) -> list[tuple[bytes, HttpReply]]:
        return [(body, reply) for op, body, reply in self.exchanges if op == "PKIOperation"]


def spki_of(public_key: object) -> bytes:
    """SubjectPublicKeyInfo DER of a `cryptography` public key."""
    assert isinstance(public_key, rsa.RSAPublicKey)
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
