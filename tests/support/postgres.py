"""A real PostgreSQL for tests: a throwaway cluster, and a fresh database per test.

`pg_cluster` (session scope) is either `$TRUSTLEDGER_TEST_PG` (an existing server's URL, used
as it is: the tests only create and drop their own databases on it) or a cluster of our own:
Debian's `initdb` in a new temporary directory, then `postgres -k DIR -h 127.0.0.1 -p PORT`
on a free loopback port, stopped (fast shutdown) and removed at the end of the session. No
system service, no system configuration is touched. PostgreSQL refuses to run as root, so
when the tests run as root (CI) the cluster belongs to, and the server runs as, the
unprivileged `postgres` user Debian's package creates (`nobody` if there is none).

`pg_url` (function scope) is a new empty database on it (`CREATE DATABASE ... TEMPLATE
template0`, dropped after the test), as `postgresql://trustledger@127.0.0.1:PORT/DB`. The test
cluster trusts loopback logins: there is no password.

Durability settings are PostgreSQL's defaults unless `start_cluster(fast=True)` (what the test
fixture uses): `fsync=off` and `synchronous_commit=off` make a commit cost no disk flush, which
changes nothing a test checks (a killed client or backend is not a lost page cache) and keeps
the suite fast on a shared machine. Benchmarks start it with `fast=False`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.peer_support import free_port

SUPERUSER = "trustledger"
BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)  # newest first


@dataclass(frozen=True)
class Cluster:
    """A running server: where to reach it (`url(dbname)`) and, if ours, its directory.
    `given`: the URL `$TRUSTLEDGER_TEST_PG` named (its password and options are kept)."""

    host: str
    port: int
    user: str
    datadir: Path | None
    given: str | None = None
    admin_db: str = "postgres"  # where the tests connect to create and drop theirs

    def url(self, dbname: str = "postgres") -> str:
        if self.given is not None:
            return urlsplit(self.given)._replace(path=f"/{dbname}").geturl()
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"


def pg_binary(name: str) -> Path | None:
    """`initdb`, `postgres`, ... from Debian's package (newest major), else from PATH."""
    for d in BIN_DIRS:
        if (d / name).is_file():
            return d / name
    found = shutil.which(name)
    return Path(found) if found else None


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a `postgres` nor a `nobody` user exists")


@contextlib.contextmanager
def start_cluster(*, fast: bool = True, extra: tuple[str, ...] = ()) -> Iterator[Cluster]:
    """initdb in a new temporary directory and run `postgres` on 127.0.0.1 until the block
    ends. `extra`: more `-c name=value` settings for the server."""
    initdb, postgres = pg_binary("initdb"), pg_binary("postgres")
    if initdb is None or postgres is None:
        raise FileNotFoundError("PostgreSQL's initdb/postgres not found: run "
                                "tools/install-peers.sh (Debian's postgresql package)")
    owner = _server_user()
    # Under /tmp itself, not under pytest's tmp dirs: those are 0700 root, and the server
    # may run as another user.
    root = Path(tempfile.mkdtemp(prefix="trustledger-pg-"))
    as_user = {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid,
                                        "extra_groups": []}
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        datadir = root / "data"
        subprocess.run([str(initdb), "-D", str(datadir), "-U", SUPERUSER, "-A", "trust",
                        "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                       check=True, capture_output=True, cwd=root, **as_user)  # type: ignore[arg-type]
        port = free_port()
        settings = ["listen_addresses=127.0.0.1", f"port={port}",
                    f"unix_socket_directories={root}", "max_connections=200",
                    "shared_buffers=64MB", *(("fsync=off", "synchronous_commit=off",
                                              "full_page_writes=off") if fast else ()), *extra]
        args = [str(postgres), "-D", str(datadir)]
        for s in settings:
            args += ["-c", s]
        with (root / "server.log").open("wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=root,
                                    start_new_session=True, **as_user)  # type: ignore[call-overload]
        try:
            cluster = Cluster("127.0.0.1", port, SUPERUSER, datadir)
            _wait_ready(proc, cluster, root / "server.log")
            yield cluster
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], cluster: Cluster, log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited ({proc.returncode}): "
                               f"{log.read_text(errors='replace')[-2000:]}")
        try:
            psycopg.connect(cluster.url(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT: roll back what runs, then a clean stop); SIGKILL if stuck."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cluster_from_env(url: str) -> Cluster:
    """An existing server, from a `postgresql://USER[:PASSWORD]@HOST:PORT/DB` URL (its DB is
    where the tests connect to create theirs)."""
    from psycopg.conninfo import conninfo_to_dict

    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("TRUSTLEDGER_TEST_PG must be a postgresql://USER@HOST:PORT/DB URL")
    info = conninfo_to_dict(url)
    return Cluster(str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)),
                   str(info.get("user", SUPERUSER)), None, url,
                   str(info.get("dbname", "postgres")))


@contextlib.contextmanager
def fresh_database(cluster: Cluster) -> Iterator[str]:
    """A new empty database on `cluster` until the block ends; yields its URL."""
    import psycopg

    name = f"tl_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(cluster.url(cluster.admin_db), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield cluster.url(name)
    finally:
        with psycopg.connect(cluster.url(cluster.admin_db), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def end_sessions(url: str, *, allow: bool | None = None) -> None:
    """Drop every other connection to the database at `url`; `allow` False/True closes/opens
    it to new connections first (the server "away", without stopping the cluster other tests
    share)."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        if allow is not None:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      "datname = %s AND pid <> pg_backend_pid()", (name,))


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL server for the whole session (see the module docstring)."""
    env = os.environ.get("TRUSTLEDGER_TEST_PG")
    if env:
        yield cluster_from_env(env)
        return
    if pg_binary("initdb") is None:
        why = "PostgreSQL not installed (tools/install-peers.sh installs Debian's postgresql)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with start_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh empty database for this test: `postgresql://USER@127.0.0.1:PORT/DB`."""
    with fresh_database(pg_cluster) as url:
        yield url
