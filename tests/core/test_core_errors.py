"""The error taxonomy (engine/errors.py): one root, `%` added exactly once, when rendered.

Every error class an operator may see descends from `TrustledgerError`; its `text` never
carries the IOS `%` marker and its rendering (`message`, `str()`, `render()`) carries exactly
one. A source check keeps constructors from adding `%` again.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import engine.audit.export as audit_export
import engine.ca.errors as ca_errors
import engine.ca.service as ca_service
import engine.cli as cli
import engine.engine as engine_app
import engine.errors as errors
import engine.folds as folds
import engine.keyimport as keyimport
import engine.keystore as keystore
import engine.logexport as logexport
import engine.machines.diagrams as diagrams
import engine.scep.errors as scep_errors
import engine.state as state
import engine.storebinding as storebinding
from engine.devicelog import LogConflict
from engine.revocation.store import BlobMissing
from engine.revocation.transport import CrlUnavailable
from engine.scep.types import FailInfo
from engine.trustpool.bundle import BundleRefused
from events.filelog import LogError, LogWriteFailed

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Text without the marker: what a constructor is given.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60).filter(
    lambda t: not t.lstrip().startswith("%"))


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


# How to build each class from a text (every class of the taxonomy must be listed here).
FACTORIES: dict[type, Callable[[str], Any]] = {
    errors.TrustledgerError: lambda t: errors.TrustledgerError(errors.Reason.NOT_FOUND, t),
    errors.OperatorError: lambda t: errors.OperatorError(errors.Reason.INVALID_VALUE, t),
    errors.PeerError: lambda t: errors.PeerError(errors.PeerReason.UNREACHABLE, t),
    errors.ScepFailure: lambda t: errors.ScepFailure(errors.PeerReason.REFUSED,
                                                     FailInfo.BAD_REQUEST, t),
    cli.CommandLineError: lambda t: cli.CommandLineError(errors.Reason.NOT_FOUND, t),
    keystore.KeystoreError: lambda t: keystore.KeystoreError(keystore.KeystoreFailure.DAMAGED, t),
    keystore.KeystoreWriteFailed: lambda t: keystore.KeystoreWriteFailed(OSError(28, t)),
    keystore.KeyZeroized: keystore.KeyZeroized,
    keystore.KeyGenerationRefused: keystore.KeyGenerationRefused,
    keyimport.KeyImportError: lambda t: keyimport.KeyImportError(keyimport.ImportProblem.EMPTY, t),
    ca_errors.CAError: lambda t: ca_errors.CAError(errors.Reason.BAD_DATA, t),
    audit_export.AuditError: lambda t: audit_export.AuditError(errors.Reason.NOT_FOUND, t),
    ca_errors.NotACA: ca_errors.NotACA,
    ca_errors.ScepRefusal: lambda t: ca_errors.ScepRefusal(FailInfo.BAD_REQUEST, t),
    ca_errors.CAUnavailable: lambda t: ca_errors.CAUnavailable(OSError(5, t)),
    ca_service.CALocked: lambda t: ca_service.CALocked(pathlib.Path(t)),
    ca_service.CAConflict: lambda t: ca_service.CAConflict(LogConflict(t)),
    scep_errors.ScepError: lambda t: scep_errors.ScepError(
        scep_errors.ScepErrorReason.MALFORMED, t),
    folds.UnfoldedEvent: lambda t: folds.UnfoldedEvent("device", t, 7),
    state.UnfoldableLog: lambda t: state.UnfoldableLog([(7, "device", "X")], ValueError(t)),
    engine_app.ForeignLog: lambda t: engine_app.ForeignLog(pathlib.Path(t), "ca", "X", 1),
    diagrams.DiagramError: diagrams.DiagramError,
    BundleRefused: BundleRefused,
    CrlUnavailable: CrlUnavailable,
    BlobMissing: lambda t: BlobMissing("0" * 64, t),
    storebinding.BindingError: lambda t: storebinding.BindingError(errors.Reason.INVALID_VALUE,
                                                                   t),
    logexport.ExportRefused: lambda t: logexport.ExportRefused(errors.Reason.BAD_DATA, t),
}


def test_every_error_class_is_covered() -> None:
    """A new error class must be added to FACTORIES, so the property below covers it."""
    assert _subclasses(errors.TrustledgerError) | {errors.TrustledgerError} == set(FACTORIES)


@pytest.mark.parametrize("cls", sorted(FACTORIES, key=lambda c: c.__qualname__),
                         ids=lambda c: c.__qualname__)
@given(text=TEXT)
def test_percent_is_rendered_once(cls: type, text: str) -> None:
    err = FACTORIES[cls](text)
    assert isinstance(err, errors.TrustledgerError)
    assert not err.text.startswith("%")
    assert err.message == "% " + err.text
    assert str(err) == err.message
    assert err.render() == err.message
    assert not err.message[1:].lstrip().startswith("%")


def test_reason_says_whose_error_it_is() -> None:
    assert isinstance(FACTORIES[errors.OperatorError]("x").reason, errors.Reason)
    assert isinstance(FACTORIES[errors.PeerError]("x").reason, errors.PeerReason)
    refusal = ca_errors.ScepRefusal(FailInfo.BAD_CERT_ID, "no such serial")
    assert isinstance(refusal, errors.ScepFailure) and isinstance(refusal, ca_errors.CAError)
    assert refusal.reason is errors.PeerReason.BAD_REQUEST
    assert refusal.fail_info is FailInfo.BAD_CERT_ID


def test_caret_goes_above_the_message() -> None:
    err = errors.invalid_input(4)
    assert err.render(2) == "      ^\n% Invalid input detected at '^' marker."


@given(text=TEXT, sentence=st.booleans())
def test_store_errors_render_the_marker_only_for_sentences(text: str, sentence: bool) -> None:
    err = LogError(text, sentence=sentence)
    assert err.text == text
    assert str(err) == err.render() == (f"% {text}" if sentence else text)


def test_log_write_failed_is_a_diagnostic() -> None:
    err = LogWriteFailed(OSError(28, "No space left on device"), rolled_back=True)
    assert str(err) == "event log write failed: No space left on device"


ERROR_CALLS = {"TrustledgerError", "OperatorError", "PeerError", "ScepFailure", "CAError",
               "NotACA", "ScepRefusal", "KeystoreError", "KeyGenerationRefused",
               "KeyImportError", "CommandLineError", "ScepError", "LogError", "not_allowed",
               "bad", "_legal", "CommandError", "BindingError", "ExportRefused",
               "LogConflict"}


def _percent_literals(tree: ast.AST) -> list[int]:
    """Lines where an error constructor is handed a text that starts with `%`."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else (
            node.func.attr if isinstance(node.func, ast.Attribute) else "")
        if name not in ERROR_CALLS:
            continue
        for arg in node.args:
            first = arg.values[0] if isinstance(arg, ast.JoinedStr) and arg.values else arg
            if isinstance(first, ast.Constant) and isinstance(first.value, str) \
                    and first.value.startswith("%"):
                found.append(node.lineno)
    return found


def test_no_constructor_is_given_the_marker() -> None:
    offenders = []
    for package in ("engine", "events", "projections"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            offenders += [f"{path.relative_to(ROOT)}:{line}" for line in _percent_literals(tree)]
    assert offenders == []


def test_no_caller_slices_the_marker_off() -> None:
    pattern = ('removeprefix("%', "removeprefix('%", 'lstrip("%', "message[2:]", "message[1:]",
               'startswith("% ")')
    hits = [f"{p.relative_to(ROOT)}: {needle}"
            for package in ("engine", "events", "projections")
            for p in sorted((ROOT / package).rglob("*.py"))
            for needle in pattern if needle in p.read_text()]
    assert hits == []
