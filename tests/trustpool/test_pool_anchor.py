"""`anchor_for`: a trustpoint's CA before the pool (and its policy), the pool's policy only for
chains anchored in the pool, and never an unusable pool certificate."""

from __future__ import annotations

from pathlib import Path

from engine import Engine
from engine.ports import FakeClock
from engine.trustpool import anchor_for
from events.store import PendingEvent
from events.trustpoint import CACertificateAccepted
from tests.trustpool.pool_certs import ca, der, key, pem, years

NOW = 1_764_201_600_000_000  # 2025-11-27


def _device(tmp_path: Path) -> Engine:
    return Engine.open(tmp_path / "dev", clock=FakeClock(NOW), builtins=None)


def _run(dev: Engine, *lines: str) -> None:
    for line in lines:
        result = dev.execute(line)
        assert result.ok, (line, result.output)


def _authenticate(dev: Engine, name: str, ca_der: bytes) -> None:
    """The trustpoint's CA as `crypto ca authenticate` records it (the SCEP exchange itself is
    the trustpoint tests' business)."""
    dev.fold(dev.store.append([PendingEvent(CACertificateAccepted(name, ca_der, (), (),
                                                                  "terminal"),
                                            "device", NOW, "admin", "test")]))


def test_a_chain_anchored_in_both_takes_the_trustpoint_and_its_policy(tmp_path: Path) -> None:
    root = ca("Both Root", *years(2020, 2040))
    inter = ca("Both Issuing CA", *years(2020, 2035), issuer=root)
    leaf = ca("peer.example", *years(2024, 2027), issuer=inter, is_ca=False)[0]
    chain = [leaf, inter[0]]
    (tmp_path / "pool.pem").write_bytes(pem([root[0]]))
    with _device(tmp_path) as dev:
        _run(dev, f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}")
        # The pool alone: its policy (crl required by default) applies.
        got = anchor_for(dev.state, chain, NOW)
        assert got is not None and got.source == "trustpool" and not got.crl_optional
        assert got.certificate == der(root[0])
        # The same root becomes a trustpoint's CA, with `crl optional`: the trustpoint wins.
        _run(dev, "configure", "crypto ca trustpoint corp", "enrollment terminal",
             "crl optional", "commit", "end")
        _authenticate(dev, "corp", der(root[0]))
        got = anchor_for(dev.state, chain, NOW)
        assert got is not None and (got.source, got.name) == ("trustpoint", "corp")
        assert got.crl_optional
        # The pool's own `crl optional` applies only to chains anchored in the pool.
        _run(dev, "configure", "crypto ca trustpool policy", "crl optional", "exit",
             "crypto ca trustpoint corp", "no crl optional", "commit", "end")
        got = anchor_for(dev.state, chain, NOW)
        assert got is not None and got.source == "trustpoint" and not got.crl_optional
        _run(dev, "configure", "no crypto ca trustpoint corp")
        assert dev.execute("commit", answers=["yes"]).ok
        _run(dev, "end")
        got = anchor_for(dev.state, chain, NOW)
        assert got is not None and got.source == "trustpool" and got.crl_optional


def test_unusable_pool_certificates_are_never_anchors(tmp_path: Path) -> None:
    expired = ca("Old Root", *years(2010, 2020))
    future = ca("Future Root", *years(2040, 2050))
    weak = ca("Weak Root", *years(2020, 2040), k=key(1024))
    leaves = {n: ca(f"{n}.example", *years(2015, 2045), issuer=i, is_ca=False)[0]
              for n, i in (("old", expired), ("future", future), ("weak", weak))}
    (tmp_path / "pool.pem").write_bytes(pem([expired[0], future[0], weak[0]]))
    with _device(tmp_path) as dev:
        _run(dev, f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}")
        assert anchor_for(dev.state, [leaves["old"]], NOW) is None
        assert anchor_for(dev.state, [leaves["future"]], NOW) is None
        assert anchor_for(dev.state, [leaves["weak"]], NOW) is not None
        _run(dev, "configure", "crypto ca rsa 1024 disable", "commit", "end")
        assert anchor_for(dev.state, [leaves["weak"]], NOW) is None
        show = dev.execute("show crypto ca trustpool").output
        assert "Status : Not used (RSA 1024 bits: crypto ca rsa 1024 disable)" in show
        assert dev.state.trustpool.downloaded[2].rsa_bits == 1024  # kept


def test_a_built_in_shadowed_by_a_download_is_not_an_anchor(tmp_path: Path) -> None:
    from tests.trustpool.pool_support import fixed_builtins

    original = ca("Shared Name", *years(2020, 2040))
    other = ca("Shared Name", *years(2021, 2041))  # same subject, another key
    leaf = ca("x.example", *years(2024, 2027), issuer=original, is_ca=False)[0]
    (tmp_path / "builtin.pem").write_bytes(pem([original[0]]))
    (tmp_path / "dl.pem").write_bytes(pem([other[0]]))
    with Engine.open(tmp_path / "dev", clock=FakeClock(NOW),
                     builtins=fixed_builtins(tmp_path / "builtin.pem")) as dev:
        assert anchor_for(dev.state, [leaf], NOW) is not None
        _run(dev, f"crypto ca trustpool import url file://{tmp_path / 'dl.pem'}")
        assert anchor_for(dev.state, [leaf], NOW) is None
