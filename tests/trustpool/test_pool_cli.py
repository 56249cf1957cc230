"""The trustpool at the CLI: the policy submode on a real pty (prompt, `?`, two-stage commit,
running-config), and `trustledger exec` under both locales (names with non-ASCII letters)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pty_support import Screen, shell_env, spawn_shell
from tests.trustpool.pool_certs import ca, pem, years

EXEC = "RP/0/RP0/CPU0:ios#"
CONFIG = "RP/0/RP0/CPU0:ios(config)#"
POOL = "RP/0/RP0/CPU0:ios(config-trustpool)#"


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Screen]:
    child = spawn_shell(tmp_path / "d")
    screen = Screen(child)
    screen.expect(EXEC)
    yield screen
    child.terminate(force=True)


def test_policy_submode_on_the_pty(shell: Screen) -> None:
    shell.send("configure\r")
    shell.expect(CONFIG)
    shell.send("crypto ca trustpool policy\r")
    shell.expect(POOL)
    shell.send("?")
    for line in ("cabundle", "crl", "description", "exit", "vrf"):
        shell.expect(line)
    shell.send("\x15")  # Ctrl-U
    shell.send("cabundle url http://127.0.0.1:9/ios.p7b\r")
    shell.expect(POOL)
    shell.send("crl optional\r")
    shell.expect(POOL)
    shell.send("description Trustpool for Test.\r")
    shell.expect(POOL)
    shell.send("vrf mgmt\r")
    shell.expect(POOL)
    shell.send("cabundle url ftp://127.0.0.1/x\r")
    shell.expect("% Invalid input detected at '^' marker.")
    shell.send("show configuration\r")
    shell.expect("crypto ca trustpool policy\r\n cabundle url http://127.0.0.1:9/ios.p7b\r\n"
                 " crl optional\r\n description Trustpool for Test.\r\n vrf mgmt\r\n!\r\nend")
    shell.send("do show crypto ca trustpool policy | include bundle url\r")
    shell.expect("CA bundle url           : not configured")  # not committed yet
    shell.send("commit\r")
    shell.expect(POOL)
    shell.send("exit\r")
    shell.expect(CONFIG)
    shell.send("crypto ca rsa 1024 disable\r")
    shell.expect(CONFIG)
    shell.send("end\r")
    shell.expect("Uncommitted changes found, commit them? [yes]:")
    shell.send("yes\r")
    shell.expect(EXEC)
    shell.send("show running-config\r")
    shell.expect("crypto ca trustpool policy\r\n cabundle url http://127.0.0.1:9/ios.p7b\r\n"
                 " crl optional\r\n description Trustpool for Test.\r\n vrf mgmt\r\n!\r\n"
                 "crypto ca rsa 1024 disable\r\n")
    shell.send("show crypto ca trustpool policy\r")
    shell.expect("CA bundle url           : http://127.0.0.1:9/ios.p7b")
    shell.expect("Revocation check (CRL)  : optional")
    shell.expect("VRF                     : mgmt (recorded; VRFs are not used")
    shell.expect("RSA 1024                : disabled")
    shell.send("configure\r")
    shell.expect(CONFIG)
    shell.send("crypto ca trustpool policy\r")
    shell.expect(POOL)
    shell.send("no vrf\r")
    shell.expect(POOL)
    shell.send("commit\r")
    shell.expect(POOL)
    shell.send("end\r")
    shell.expect(EXEC)
    shell.send("show running-config | count vrf\r")
    shell.expect("Number of lines which match regexp = 0")


# -- `trustledger exec` under both locales ------------------------------------------------------

pytestmark = pytest.mark.usefixtures("cli_locale")


def _exec(data: Path, script: str) -> subprocess.CompletedProcess[bytes]:
    path = data.parent / "script.txt"
    path.write_text(script)
    return subprocess.run([sys.executable, "-m", "engine.cli", "exec", "--data", str(data),
                           "-f", str(path)], env=shell_env(), capture_output=True,
                          timeout=120, check=False)


def test_exec_import_and_show(tmp_path: Path, cli_locale: str) -> None:
    root = ca("Gyökér Teszt", *years(2020, 2040))[0]  # a non-ASCII subject
    (tmp_path / "b.pem").write_bytes(pem([root]))
    done = _exec(tmp_path / "d", f"crypto ca trustpool import url file://{tmp_path / 'b.pem'}\n"
                                 "show crypto ca trustpool | include Teszt\n"
                                 "show crypto ca trustpool policy | include Downloaded\n")
    out = done.stdout.decode("utf-8")
    assert done.returncode == 0, (out, done.stderr)
    assert b"Traceback" not in done.stderr
    assert "1 CA certificate downloaded into the trustpool (unsigned)" in out
    assert "Downloaded certificates : 1" in out
    shown = "Gyökér" if cli_locale == "C.UTF-8" else "Gy\\xf6k\\xe9r"
    assert f"CN={shown} Teszt,O=Example" in out


def test_the_cli_records_the_built_in_bundle_at_first_open(tmp_path: Path,
                                                         cli_locale: str) -> None:
    from engine import Engine
    from engine.trustpool.builtin import certifi_bundle
    from events.audit import AuditKeyCreated
    from events.trustpool import TrustpoolBuiltinsRecorded

    for _ in range(2):
        done = _exec(tmp_path / "d", "show crypto ca trustpool policy | include Built-In\n")
        assert done.returncode == 0, done.stderr
        assert f"({certifi_bundle().describe()}, SHA-256 " in done.stdout.decode()
    with Engine.open(tmp_path / "d") as dev:
        rows = list(dev.store.read_rows(1))
    assert [r[2] for r in rows] == [AuditKeyCreated.type_name,  # made by the first open too
                                    TrustpoolBuiltinsRecorded.type_name]  # once


def test_exec_refusal_is_one_percent_line(tmp_path: Path, cli_locale: str) -> None:
    (tmp_path / "junk.p7b").write_bytes(b"\x30\x03\x02\x01\x00")
    done = _exec(tmp_path / "d", f"crypto ca trustpool import url file://{tmp_path / 'junk.p7b'}\n")
    out = done.stdout.decode("utf-8")
    assert done.returncode != 0 and b"Traceback" not in done.stderr
    errors = [line for line in out.splitlines() if line.startswith("%")]
    assert len(errors) == 1 and "is neither a PEM bundle nor a PKCS#7 DER bundle" in errors[0]
    assert errors[0].endswith("Nothing was changed.")
