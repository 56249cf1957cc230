"""engine.scep loads its submodules on first use (PEP 562): every exported name resolves,
and the lazy table lists exactly the exports."""

from __future__ import annotations

import importlib

import engine.scep as scep


def test_every_export_resolves_from_the_module_the_table_names() -> None:
    assert set(scep._HOME) == set(scep.__all__)
    for name, module in scep._HOME.items():
        home = importlib.import_module(f"engine.scep.{module}")
        assert getattr(scep, name) is getattr(home, name), name


def test_submodules_resolve_and_unknown_names_are_attribute_errors() -> None:
    assert scep.cacert is importlib.import_module("engine.scep.cacert")
    try:
        scep.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("no AttributeError")
