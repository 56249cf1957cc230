"""A stored event a fold of this build cannot take refuses the replay (engine/state.py
`UnfoldableLog`, an UnfoldedEvent: the CLI and the fleet's quarantine refuse it as such)
naming that event, its type and seq, without blaming the log alone: the event may be altered
or from another build, or this build's fold may have a bug."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.folds import UnfoldedEvent
from engine.logexport import _rows, read_export
from engine.state import DeviceState, UnfoldableLog, replay_rows
from tests.core.test_core_log_import_folds import _device_export


def test_an_event_that_does_not_fold_is_named_without_blaming_the_log(tmp_path: Path) -> None:
    rows = _rows(read_export(_device_export(tmp_path / "source")).records)
    assert [r[2] for r in rows[:4]] == ["ConfigurationCommitted", "KeyPairGenerated",
                                        "ConfigurationCommitted", "KeyPairGenerated"]
    forged = list(rows)  # rows of several types: folded row by row, the failing one named
    forged[3] = (*rows[3][:7], dataclasses.replace(rows[3][7], algorithm="dsa"), rows[3][8])
    with pytest.raises(UnfoldableLog) as refused:
        replay_rows(DeviceState(), forged)
    assert isinstance(refused.value, UnfoldedEvent)
    assert (refused.value.type_name, refused.value.seq) == ("KeyPairGenerated", 4)
    assert refused.value.render(0) == (
        "% The device log's event KeyPairGenerated at seq 4 does not fold in this build "
        "(ValueError: 'dsa' is not a valid KeyAlgorithm): the log holds an event this build "
        "cannot apply (altered, or written by another build), or this build has a bug. "
        "Refusing to open; 'trustledger log verify' checks the log's chain.")
