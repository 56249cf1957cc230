"""A real OpenLDAP slapd on a free loopback port, for CRL publishing and fetching tests:
`../shared/peers/ldap-server.sh run DIR PORT` in its own session, stopped when the block ends.

The directory holds `dc=example,dc=com` and the peer script's own test CA entry
`cn=Root CA,dc=example,dc=com`; the root DN `cn=admin,dc=example,dc=com` writes with the
password `secret`; anyone reads.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import ldap3

from tests.support.peer_support import free_port, peers_dir

SUFFIX = "dc=example,dc=com"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "secret"
CRL_ATTRIBUTE = "certificateRevocationList;binary"


@dataclass
class Slapd:
    port: int
    workdir: Path

    def url(self, dn: str) -> str:
        """`ldap://127.0.0.1:PORT/DN`, spaces as %20."""
        return f"ldap://127.0.0.1:{self.port}/{quote(dn, safe='=,')}"

    def password_file(self) -> Path:
        """A 0600 file holding the admin's password."""
        path = self.workdir / "admin.pw"
        path.write_text(ADMIN_PASSWORD + "\n")
        path.chmod(0o600)
        return path

    def read(self, dn: str) -> dict[str, list[bytes]] | None:
        """The entry's raw attributes (anonymous base search), None if it does not exist."""
        conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=self.port, get_info=ldap3.NONE),
                                auto_bind=True, receive_timeout=5)
        try:
            conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE,
                        attributes=[CRL_ATTRIBUTE, "objectClass"])
            response = list(conn.response or [])  # no such entry: none (no exception raised)
        finally:
            conn.unbind()
        entries = [r for r in response if r.get("type") == "searchResEntry"]
        return dict(entries[0]["raw_attributes"]) if entries else None

    def crl_of(self, dn: str) -> bytes | None:
        attrs = self.read(dn) or {}
        values = next((v for k, v in attrs.items() if k.lower() == CRL_ATTRIBUTE.lower()), [])
        return bytes(values[0]) if values else None


@contextmanager
def running_slapd(workdir: Path, port: int | None = None) -> Iterator[Slapd]:
    """slapd on 127.0.0.1:`port` (default: a free one) until the block ends."""
    script = peers_dir("slapd", "slapadd") / "ldap-server.sh"
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "slapd.log"  # slapd -d stats logs every operation: not into a pipe
    with log.open("wb") as out:
        proc = subprocess.Popen([str(script), "run", str(workdir / "slapd"), str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_listening(proc, port, log)
        yield Slapd(port, workdir)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_until_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = log.read_text(errors="replace")
            raise AssertionError(f"slapd exited ({proc.returncode}): {err[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"slapd did not listen on 127.0.0.1:{port}")
