"""`trustledger ca rollover DIR [--days N]`, and the lines other `ca` commands print about the
CA's certificates once a rollover made more than one (engine/ca/generations.py).

    CA rolled over in DIR: CA certificate 2 is next
      subject:      CN=trustledger CA,O=trustledger
      key:          rsa:2048 (DIR/ca-2.key, mode 0600)
      certificate:  DIR/ca-2.pem
      valid from:   2026-12-01 10:29:00 UTC
      valid until:  2046-11-26 10:30:00 UTC
      takes over:   2036-11-29 10:30:00 UTC (when CA certificate 1 expires)
    GetCACaps now advertises GetNextCACert. The next CA certificate's fingerprint, as
    `crypto ca authenticate` shows it on the router:
    ...

The server loads every CA key when it starts, so a rollover needs the CA directory to itself:
while `ca serve` runs, it is refused (stop the server, roll over, start it again).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.ca.errors import CAError
from engine.ca.generations import CAGeneration, generation_at
from engine.ca.service import BuiltinCA, CALocked
from engine.ca.state import CAState
from engine.certids import fingerprint_lines
from engine.errors import Reason
from engine.ports import Clock, from_micros


def _time(us: int) -> str:
    return f"{from_micros(us):%Y-%m-%d %H:%M:%S} UTC"


def rollover(args: argparse.Namespace, clock: Clock | None) -> int:
    root: Path = args.dir
    try:
        ca = BuiltinCA.open(root, clock=clock)
    except CALocked:
        raise CAError(Reason.NOT_ALLOWED, f"the CA in {root} is being served (`ca serve`); stop "
                                          "the server, roll over, and start it again (it loads "
                                          "the CA's keys when it starts)") from None
    with ca:
        before = ca.current_generation()
        new = ca.rollover(args.days)
        algorithm = ca.state.key_algorithm
        print(f"CA rolled over in {root}: CA certificate {new.number} is next")
        print(f"  subject:      {ca.ca_certificate.subject.rfc4514_string()}")
        print(f"  key:          {algorithm} ({root / new.key_file}, mode 0600)")
        print(f"  certificate:  {root / f'ca-{new.number}.pem'}")
        print(f"  valid from:   {_time(new.not_before)}")
        print(f"  valid until:  {_time(new.not_after)}")
        print(f"  takes over:   {_time(before.not_after)} (when CA certificate "
              f"{before.number} expires)")
        print("GetCACaps now advertises GetNextCACert. The next CA certificate's fingerprint, "
              "as `crypto ca authenticate` shows it on the router:")
        for line in fingerprint_lines(new.certificate):
            print(line)
    return 0


def generation_lines(state: CAState, now: int) -> list[str]:
    """One line per CA certificate saying which is current, next or expired, once a
    rollover made more than one (none before: the listings keep their layout)."""
    if len(state.generations) < 2:
        return []
    current = generation_at(state.generations, now)
    return [f"CA certificate {g.number}: {_role(state, g, current)}" for g in state.generations]


def _role(state: CAState, g: CAGeneration, current: int) -> str:
    if g.number == current:
        return f"current, valid until {_time(g.not_after)}"
    if g.number > current:  # it takes over when the one before it expires
        return f"next, takes over {_time(state.generations[g.number - 2].not_after)}"
    return f"expired {_time(g.not_after)}"


def issuer_line(state: CAState, generation: int, now: int) -> str:
    """`ca show`'s line naming the CA certificate that issued a certificate (after a rollover)."""
    if len(state.generations) < 2:
        return ""
    current = generation_at(state.generations, now)
    role = "current" if generation == current else "next" if generation > current else "expired"
    return f"  Issued by       : CA certificate {generation} ({role})"

