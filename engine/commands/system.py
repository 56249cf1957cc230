"""Device identity: `hostname` and `domain name` (the FQDN that goes into certificates)."""

from __future__ import annotations

from engine.grammar import DOMAIN, GRAMMAR, HOSTNAME, ArgSpec

GRAMMAR.config("hostname <name>", key="hostname", help="Set system's network name", rank=10,
               args={"name": ArgSpec(HOSTNAME, "This system's network name")})
GRAMMAR.config("domain name <domain>", key="domain name", rank=11,
               help="Define the default domain name",
               args={"domain": ArgSpec(DOMAIN, "Default domain name")})
