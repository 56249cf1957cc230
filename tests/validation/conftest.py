"""The built-in CA in process beside a device (tests/support/builtin_ca_fixtures.py); a test
module's own fixture of the same name wins."""

from tests.support.builtin_ca_fixtures import ca_factory, clock, device, network

__all__ = ["ca_factory", "clock", "device", "network"]
