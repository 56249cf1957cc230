"""The CA's derived files in the way: DIR/ca.crl a directory (or any write of it failing)
after the events that issued the CRL were made durable. The command that appended them
succeeded and must say so (it raised IsADirectoryError after the challenge was minted and
recorded, and left its temporary file behind); the CRL file is written once it can be."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.ca.service import CRL_FILE, BuiltinCA
from engine.ca.worker import CRLFile
from engine.scep.wire import Unanswerable
from tests.ca.ca_support import make_ca


def test_a_crl_file_that_cannot_be_written_fails_no_durable_command(tmp_path: Path) -> None:
    root = tmp_path / "ca"
    make_ca(root).close()
    (root / CRL_FILE).unlink(missing_ok=True)
    (root / CRL_FILE).mkdir()
    with BuiltinCA.open(root) as ca:
        challenge = ca.mint_challenge()  # the first durable release publishes the CRL
        assert challenge
        assert not [p.name for p in root.iterdir() if p.name.startswith(f".{CRL_FILE}.")]
        shutil.rmtree(root / CRL_FILE)
        ca.publish_crl()  # the next release tries again
    assert (root / CRL_FILE).is_file()


def test_a_workers_crl_file_that_cannot_be_read_is_unavailable_not_a_500(
        tmp_path: Path) -> None:
    """A `ca serve --workers` worker serves /crl/ca.crl from DIR/ca.crl: a directory there
    (or EIO) is the 503 a missing CRL gets, not an IsADirectoryError (a 500: "a bug here")."""
    (tmp_path / CRL_FILE).mkdir()
    with pytest.raises(Unanswerable) as refused:
        CRLFile(tmp_path / CRL_FILE).read()
    assert refused.value.kind is Unanswerable.Kind.UNAVAILABLE
