"""The test suite's own layout: a package, so any files from any directories run together.

Before, helpers were imported by bare module name through the directories pytest put on
`sys.path` (`from conftest import CAFactory`, `from ca_support import ...`): with
tests/keys/ and tests/trustpoint/ in one run, `conftest` was whichever came first.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def _modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_tests_import_each_other_by_package_path_and_never_touch_sys_path() -> None:
    bare = {p.stem for p in _modules()} - {"__init__"}
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            found += [f"{path.relative_to(REPO)}:{node.lineno} imports {n}"
                      for n in names if n.split(".")[0] in bare]
            if (isinstance(node, ast.Attribute) and node.attr == "path"
                    and isinstance(node.value, ast.Name) and node.value.id == "sys"):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} uses sys.path")
    assert found == [], "\n".join(found)


def test_one_file_from_every_directory_collects_in_one_run_in_either_order() -> None:
    firsts = [min(d.glob("test_*.py")) for d in sorted(TESTS.iterdir())
              if d.is_dir() and any(d.glob("test_*.py"))]
    assert len(firsts) >= 2
    for files in (firsts, firsts[::-1]):
        done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                               "-p", "no:cacheprovider", *map(str, files)],
                              capture_output=True, text=True, cwd=REPO, timeout=120,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_no_hypothesis_example_is_timed() -> None:
    """Hypothesis's per-example deadline and too_slow health check judge the machine's load
    (tests/conftest.py turns both off for the suite): no test turns a deadline back on."""
    from hypothesis import HealthCheck, settings

    assert settings.default.deadline is None
    assert HealthCheck.too_slow in settings.default.suppress_health_check
    timed = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "settings"):
                timed += [f"{path.relative_to(REPO)}:{node.lineno}" for k in node.keywords
                          if k.arg == "deadline" and not (isinstance(k.value, ast.Constant)
                                                          and k.value.value is None)]
    assert timed == [], timed


def test_children_get_sigint_as_from_a_terminal() -> None:
    """tests/conftest.py: however pytest was started, a child reacts to Ctrl-C (SIGINT)."""
    done = subprocess.run([sys.executable, "-c", "import signal; print(signal.getsignal("
                           "signal.SIGINT) is signal.default_int_handler)"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == "True\n"
