"""A synthetic fleet for tools/bench/fleet_bench.py: N devices x M events each, real sealed
events (the engine's own event types, hash-chained as a store chains them) loaded into a
PostgreSQL store with COPY, as fast as the server takes them.

Each device's history is what a router's life looks like to the log:
    1   ConfigurationCommitted  hostname, domain name
    2   KeyPairGenerated        an ECDSA P-256 key pair (its own public key; the sealed
                                private key is random bytes: nothing here decrypts it)
    3   ConfigurationCommitted  crypto ca trustpoint myca (enrollment url, rsakeypair)
    4   CACertificateAccepted   one of three CA certificates (ECDSA, 10 years)
    5   EnrollmentRequested
    6   CertificateReceived     its own router certificate, notAfter spread evenly from
                                10 days ago to 2 years ahead (so --expiring 30d finds ~5%)
    7.. ConfigurationCommitted  hostname changes, one per commit
and every 50th device's certificate is then on its CA's CRL (RouterCertificateRevoked).
The devices' histories follow each other in the global order (as `log import` of each
device, one after the other, would leave them).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from events.device import ConfigurationCommitted
from events.keys import KeyPairGenerated
from events.store import GENESIS, PendingEvent, seal_encoded
from events.trustpoint import (
    CACertificateAccepted,
    CertificateReceived,
    EnrollmentRequested,
    RouterCertificateRevoked,
)

DAY = timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example")])


class Issuers:
    """Three CAs (ECDSA P-256, self-signed, 10 years) that sign the routers' certificates."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.cas = []
        for i in range(3):
            key = ec.generate_private_key(ec.SECP256R1())
            name = _name(f"Fleet Issuing CA {i + 1}")
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                    .public_key(key.public_key()).serial_number(i + 1)
                    .not_valid_before(now - 400 * DAY).not_valid_after(now + 3650 * DAY)
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                    .sign(key, hashes.SHA256()))
            self.cas.append((key, name, cert.public_bytes(serialization.Encoding.DER)))

    def router(self, n: int, public: ec.EllipticCurvePublicKey, days_left: float
               ) -> tuple[int, bytes]:
        """(which CA, the DER) of router n's certificate, ending `days_left` days from now."""
        which = n % 3
        key, name, _ = self.cas[which]
        after = self.now + timedelta(days=days_left)
        cert = (x509.CertificateBuilder().subject_name(_name(f"router-{n:05d}.example.net"))
                .issuer_name(name).public_key(public).serial_number(0x10000 + n)
                .not_valid_before(after - 730 * DAY).not_valid_after(after)
                .sign(key, hashes.SHA256()))
        return which, cert.public_bytes(serialization.Encoding.DER)


def device_events(n: int, events: int, issuers: Issuers, t0_us: int,
                  rng: random.Random) -> list[PendingEvent]:
    """Device n's `events` events (at least 7), in order."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    which, router = issuers.router(n, key, rng.uniform(-10, 720))
    key_id = f"{n:032x}"
    tp = "crypto ca trustpoint myca"
    url = f"http://ca{which + 1}.example.net"
    first = ((("hostname",), None, f"hostname router-{n:05d}"),
             (("domain name",), None, "domain name example.net"))
    evs: list[Any] = [
        ConfigurationCommitted(1000000001, "admin", "", "", first),
        KeyPairGenerated(key_id, "mykey", "ecdsa", "general", 256, "nistp256", spki,
                         os.urandom(80), os.urandom(12), "aes256gcm-v1"),
        ConfigurationCommitted(1000000002, "admin", "", "", (
            ((tp,), None, tp), ((tp, "enrollment"), None, f"enrollment url {url}"),
            ((tp, "rsakeypair"), None, "rsakeypair mykey"))),
        CACertificateAccepted("myca", issuers.cas[which][2], (), ("POSTPKIOperation",
                                                                   "SHA-256"), "scep"),
        EnrollmentRequested("myca", (key_id,), ("general",), (f"{n:064X}",),
                            f"cn=router-{n:05d}.example.net", ("00",), "scep", 1, 10),
        CertificateReceived("myca", key_id, "general", router, f"{n:064X}"),
    ]
    host = f"hostname router-{n:05d}"
    while len(evs) < events - (1 if n % 50 == 0 else 0):
        new = f"hostname router-{n:05d}-{len(evs)}"
        evs.append(ConfigurationCommitted(1000000001 + len(evs) - 4, "admin", "", "",
                                          ((("hostname",), host, new),)))
        host = new
    if n % 50 == 0:
        evs.append(RouterCertificateRevoked("myca", key_id, f"{0x10000 + n:X}", t0_us,
                                            "keyCompromise", "ab" * 32))
    return [PendingEvent(ev, "device", t0_us + i * 60_000_000, "admin", f"c{i}")
            for i, ev in enumerate(evs)]


def copy_fleet(conn: Any, devices: int, events: int, *, now: datetime | None = None,
               progress: Any = None) -> int:
    """Create `devices` logs of `events` events each in the store `conn` is connected to
    (its schema made by events.pgstore.ensure_schema), with COPY, in one transaction per
    1,000 devices. Returns the events loaded."""
    now = now or datetime.now(UTC)
    issuers = Issuers(now)
    rng = random.Random(19)
    t0 = int((now - 30 * DAY).timestamp()) * 1_000_000
    total = 0
    for start in range(0, devices, 1000):
        chunk = range(start, min(start + 1000, devices))
        rows = list(_rows(chunk, events, issuers, t0, rng))
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x74726C706F736E,))
            tx = conn.execute("SELECT pg_current_xact_id()").fetchone()[0]
            base = conn.execute("SELECT nextval('trustledger_position')").fetchone()[0]
            conn.execute("SELECT setval('trustledger_position', %s)", (base + len(rows),))
            with conn.cursor().copy("COPY trustledger_logs (log_id, kind) FROM STDIN") as cp:
                for n in chunk:
                    cp.write_row((f"router-{n:05d}", "device"))
            with conn.cursor().copy(
                    "COPY trustledger_events (position, log_id, seq, type, v, at, actor, "
                    "correlation, core, prev, hash, tx) FROM STDIN") as cp:
                for i, row in enumerate(rows):
                    cp.write_row((base + i, *row, tx))
        total += len(rows)
        if progress is not None:
            progress(total)
    return total


def _rows(chunk: range, events: int, issuers: Issuers, t0: int,
          rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for n in chunk:
        records, cores = seal_encoded(device_events(n, events, issuers, t0, rng), 1, GENESIS)
        log_id = f"router-{n:05d}"
        for r, core in zip(records, cores, strict=True):
            yield (log_id, r.seq, r.type, r.v, r.at, r.actor, r.correlation, core, r.prev,
                   r.hash)
