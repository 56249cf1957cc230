"""The test cluster itself (tests/support/postgres.py): loopback only, an unprivileged server
when the tests run as root, a fresh empty database per test."""

from __future__ import annotations

import os

import psycopg
import pytest

from tests.support.postgres import Cluster, fresh_database

pytestmark = pytest.mark.integration


def test_the_server_listens_on_loopback_only_and_never_runs_as_root(pg_cluster: Cluster) -> None:
    with psycopg.connect(pg_cluster.url()) as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()
        data_dir = conn.execute("SHOW data_directory").fetchone()
    if pg_cluster.datadir is None:
        pytest.skip("an existing server ($TRUSTLEDGER_TEST_PG): not ours to check")
    assert listen == ("127.0.0.1",)
    assert data_dir == (str(pg_cluster.datadir),)
    owner = os.stat(pg_cluster.datadir).st_uid
    assert owner == os.geteuid() if os.geteuid() != 0 else owner != 0


def test_each_test_gets_a_fresh_empty_database(pg_cluster: Cluster, pg_url: str) -> None:
    with fresh_database(pg_cluster) as other:
        assert other != pg_url
        with psycopg.connect(other) as conn:
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                                  ).fetchone()
        assert tables == (0,)
    with psycopg.connect(pg_cluster.url()) as conn:
        gone = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                            (other.rsplit("/", 1)[1],)).fetchone()
    assert gone == (0,)
