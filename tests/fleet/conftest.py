"""The built-in CA in process beside devices (tests/support/builtin_ca_fixtures.py); the
PostgreSQL fixtures (`pg_cluster`, `pg_url`) come from tests/conftest.py."""

from tests.support.builtin_ca_fixtures import ca_factory, clock, network

__all__ = ["ca_factory", "clock", "network"]
