"""The real `trustledger` command in a hostile environment: undecodable script bytes on strict
UTF-8 and ASCII terminals, umask 0, and operator mistakes (one `%` line, exit status 2, never a
traceback). Subprocess tests run under both locales of `cli_locale` (tests/conftest.py)."""

from __future__ import annotations

import io
import os
import random
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from engine.cli import main

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("cli_locale")


def trustledger(*args: str | Path, stdin: bytes | None = None,
                umask: int = -1) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], env=env,
                          cwd=REPO, capture_output=True, input=stdin, timeout=120,
                          check=False, umask=umask)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- undecodable input ----------------------------------------------------------------------------


BAD_SCRIPT = b"configure\nhostname r\xff1\ndescription caf\xc3\xa9\n"


def test_exec_echoes_undecodable_bytes_escaped_and_refuses_them(tmp_path: Path,
                                                                 cli_locale: str) -> None:
    script = tmp_path / "s.txt"
    script.write_bytes(BAD_SCRIPT)
    done = trustledger("exec", "--data", tmp_path / "d", "-f", script, "--continue")
    out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    assert "Traceback" not in err and done.returncode == 1
    assert "RP/0/RP0/CPU0:ios(config)#hostname r\\xff1\n" in out
    assert "% Input is not valid UTF-8 text (at character 10)." in out
    # Valid UTF-8 goes through; an ASCII terminal gets it escaped.
    cafe = "caf\u00e9" if cli_locale == "C.UTF-8" else "caf\\xe9"
    assert f"RP/0/RP0/CPU0:ios(config)#description {cafe}\n" in out


def test_shell_reads_undecodable_bytes_from_a_pipe(tmp_path: Path) -> None:
    done = trustledger("shell", "--data", tmp_path / "d", stdin=b"show running-config \xe9\n")
    assert "Traceback" not in done.stderr.decode("ascii") and done.returncode == 1
    assert b"show running-config \\xe9\n% Input is not valid UTF-8 text" in done.stdout


FUZZ_LINES = [b"configure", b"hostname r1", b"domain name ex.com", b"commit", b"end",
              b"show running-config", b"crypto ca trustpoint t1", b"description hello",
              b"show crypto key mypubkey rsa", b"abort", b"yes"]  # no exit: it ends a script
FUZZ_BYTES = [0xFF, 0xC3, 0xA9, 0xE9, 0x80, 0xED, 0xA0, 0xF0, 0x9F]


def fuzz_script(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randint(2, 8)):
        line = bytearray(rng.choice(FUZZ_LINES))
        for _ in range(rng.randint(0, 2)):
            at = rng.randint(0, len(line))
            line[at:at] = bytes([rng.choice(FUZZ_BYTES)])
        lines.append(bytes(line))
    return b"\n".join(lines) + b"\n"


@pytest.mark.slow
def test_fuzzed_scripts_on_a_strict_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           cli_locale: str) -> None:
    """200 seeded fuzz scripts through `main` in-process, stdout as strict as the locale's
    (UTF-8 or ASCII): no UnicodeError (the old code died on most of them), every undecodable
    byte echoed as an escape."""
    encoding = {"C.UTF-8": "utf-8", "C": "ascii"}[cli_locale]
    rng = random.Random(20261201)
    for i in range(200):
        script = tmp_path / f"s{i}.txt"
        script.write_bytes(fuzz_script(rng))
        raw = io.BytesIO()
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding=encoding,
                                                            errors="strict"))
        status = main(["exec", "--data", str(tmp_path / f"d{i}"), "-f", str(script),
                       "--continue"])
        sys.stdout.flush()
        assert status in (0, 1), script.read_bytes()
        out = raw.getvalue()
        if encoding == "ascii":
            assert out.isascii()
        if b"\xff" in script.read_bytes():
            assert b"\\xff" in out


# -- permissions ----------------------------------------------------------------------------------


def test_directories_are_private_whatever_the_umask(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("configure\nhostname r1\ncommit\nend\n"
                      "crypto key generate rsa general-keys k1\n1024\n")
    done = trustledger("exec", "--data", tmp_path / "d", "-f", script, umask=0)
    assert done.returncode == 0, done.stdout + done.stderr
    for sub in ("", "log", "snapshots", "keystore"):
        assert mode(tmp_path / "d" / sub) == 0o700, sub
    done = trustledger("ca", "init", tmp_path / "ca", "--key", "rsa:2048", umask=0)
    assert done.returncode == 0, done.stderr
    assert mode(tmp_path / "ca") == 0o700 and mode(tmp_path / "ca" / "log") == 0o700


def test_shell_history_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PROMPT_TOOLKIT_NO_CPR": "1",
           "TERM": "xterm"}
    child = pexpect.spawn(sys.executable, ["-m", "engine.cli", "shell", "--data",
                                           str(tmp_path / "d")], env=env, encoding="utf-8",
                          timeout=30, dimensions=(40, 200), preexec_fn=lambda: os.umask(0))
    try:
        child.expect_exact("RP/0/RP0/CPU0:ios#")
        child.send("show running-config\r")
        child.expect_exact("end")
        child.send("exit\r")
        child.expect(pexpect.EOF)
    finally:
        child.terminate(force=True)
    assert mode(tmp_path / "d" / "history") == 0o600
    assert mode(tmp_path / "d") == 0o700


# -- operator mistakes ----------------------------------------------------------------------------


def one_error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    """The whole stderr: exactly one `%` line; exit status 2."""
    err = done.stderr.decode("ascii")
    assert "Traceback" not in err
    assert done.returncode == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("% "), err
    return lines[0]


def unwritable(tmp_path: Path) -> Path:
    """A path nobody may create: under a 0500 directory, or (as root, who may write there)
    under /sys, where mkdir is refused to everyone."""
    if os.geteuid() == 0:
        return Path("/sys/trustledger-test/d")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    return ro / "d"


def test_data_naming_a_file_or_an_unwritable_path(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("show running-config\n")
    a_file = tmp_path / "file"
    a_file.write_text("")
    for command in ("exec", "shell"):
        extra: list[str | Path] = ["-f", script] if command == "exec" else []
        line = one_error_line(trustledger(command, "--data", a_file, *extra, stdin=b""))
        assert line == f"% Data directory {a_file} is not a directory."
        line = one_error_line(trustledger(command, "--data", a_file / "sub", *extra, stdin=b""))
        assert line == f"% Cannot create data directory {a_file / 'sub'}: Not a directory."
        target = unwritable(tmp_path) if command == "exec" else unwritable(tmp_path / "x")
        line = one_error_line(trustledger(command, "--data", target, *extra, stdin=b""))
        assert line.startswith(f"% Cannot create data directory {target}: ")


def test_exec_on_a_missing_script(tmp_path: Path) -> None:
    line = one_error_line(trustledger("exec", "--data", tmp_path / "d", "-f", tmp_path / "no"))
    assert line == f"% Script {tmp_path / 'no'}: no such file."
    line = one_error_line(trustledger("exec", "--data", tmp_path / "d", "-f", tmp_path))
    assert line == f"% Script {tmp_path}: is a directory."


def test_exec_reads_a_script_that_is_not_a_regular_file(tmp_path: Path) -> None:
    """`-f <(...)`, a FIFO or /dev/stdin is a script too (they were 'no such file')."""
    done = trustledger("exec", "--data", tmp_path / "d", "-f", "/dev/stdin",
                       stdin=b"show running-config hostname\n")
    assert done.returncode == 0, done.stderr
    assert b"#show running-config hostname\n" in done.stdout


def test_new_data_directory_is_announced(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("show running-config hostname\n")
    done = trustledger("exec", "--data", tmp_path / "new", "-f", script)
    assert done.returncode == 0
    assert done.stderr.decode() == f"% New data directory {tmp_path / 'new'} created.\n"
    again = trustledger("exec", "--data", tmp_path / "new", "-f", script)
    assert again.returncode == 0 and again.stderr == b""
    done = trustledger("shell", "--data", tmp_path / "new2", stdin=b"show running-config\n")
    assert done.stderr.decode() == f"% New data directory {tmp_path / 'new2'} created.\n"


@pytest.mark.parametrize("audit", [["log", "verify"], ["log", "show"],
                                   ["replay", "--until", "1"]])
def test_audit_commands_on_a_missing_directory(tmp_path: Path, audit: list[str]) -> None:
    missing = tmp_path / "missing"
    where = [*audit[:2], missing, *audit[2:]] if audit[0] == "log" else [audit[0], missing,
                                                                         *audit[1:]]
    assert one_error_line(trustledger(*where)) == f"% {missing}: no such directory."
    empty = tmp_path / "empty"
    empty.mkdir()
    where = [empty if w == missing else w for w in where]
    assert "holds no event log" in one_error_line(trustledger(*where))


def test_a_log_with_no_event_yet_verifies(tmp_path: Path) -> None:
    """A device opened once and never changed: its log (and the log directory named directly)
    is an empty chain, not an error."""
    script = tmp_path / "s.txt"
    script.write_text("show running-config hostname\n")
    assert trustledger("exec", "--data", tmp_path / "d", "-f", script).returncode == 0
    for where in (tmp_path / "d", tmp_path / "d" / "log"):
        done = trustledger("log", "verify", where)
        assert done.returncode == 0 and b"chain     : OK" in done.stdout


def test_ca_init_on_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    line = one_error_line(trustledger("ca", "init", a_file))
    assert line == f"% CA directory {a_file} is not a directory."


@pytest.mark.integration
def test_ca_serve_on_a_port_in_use(tmp_path: Path) -> None:
    assert trustledger("ca", "init", tmp_path / "ca", "--key", "rsa:2048").returncode == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(trustledger("ca", "serve", tmp_path / "ca", "--port", str(port),
                                          "--workers", "1"))
    assert line == f"% Cannot listen on 127.0.0.1:{port}: the port is in use."


def test_audit_commands_default_to_the_data_directory_like_exec(tmp_path: Path) -> None:
    """`log verify|show` and `replay` without DIR take $TRUSTLEDGER_DATA, as `shell` and `exec`
    take it for --data."""
    data = tmp_path / "d"
    script = tmp_path / "s.txt"
    script.write_text("configure\nhostname audited\ncommit\nend\n")
    env = {**os.environ, "TRUSTLEDGER_DATA": str(data)}
    run = subprocess.run
    assert run([sys.executable, "-m", "engine.cli", "exec", "-f", str(script)], env=env,
               capture_output=True, check=False).returncode == 0
    verified = run([sys.executable, "-m", "engine.cli", "log", "verify"], env=env,
                   capture_output=True, text=True, check=False)
    assert verified.returncode == 0 and "chain     : OK" in verified.stdout
    shown = run([sys.executable, "-m", "engine.cli", "log", "show"], env=env,
                capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and "ConfigurationCommitted" in shown.stdout
    # seqs 1-2: the audit key and the built-in trustpool bundle `exec` records at the first
    # open; 3 the commit
    replayed = run([sys.executable, "-m", "engine.cli", "replay", "--until", "3", "--show",
                    "show running-config hostname"], env=env, capture_output=True, text=True,
                   check=False)
    assert replayed.returncode == 0 and "hostname audited" in replayed.stdout


# -- a library's warnings --------------------------------------------------------------------------


def test_a_peer_name_that_makes_cryptography_warn_prints_no_python_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CA certificate with an empty CN (cryptography warns on each read of such a name) is
    imported and shown: the operator reads the show, not `UserWarning: Attribute's length`."""
    import datetime
    import warnings

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "", _validate=False)])
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    bundle = tmp_path / "empty-cn.pem"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    script = tmp_path / "s.txt"
    script.write_text(f"crypto ca trustpool import url file://{bundle}\n"
                      "show crypto ca trustpool\n")
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    done = trustledger("exec", "--data", tmp_path / "d", "-f", script)
    out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, err
    assert "1 CA certificate downloaded into the trustpool" in out
    assert "Warning" not in err.replace("% Warning", ""), err
