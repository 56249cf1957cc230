"""The CA operator's console: what `ca init`, `ca serve`, `ca requests`, `ca show` and
`demo --dir` print (issue 14 items 9-12)."""

from __future__ import annotations

import hashlib
import io
import re
import shlex
from pathlib import Path

from cli_support import cli, served
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from engine.commands.trustpoint import _describe_ca


def test_init_prints_the_fingerprint_as_the_router_shows_it(tmp_path: Path) -> None:
    out = cli("init", tmp_path / "ca").stdout
    cert = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.pem").read_bytes())
    der = cert.public_bytes(Encoding.DER)
    md5 = hashlib.md5(der).hexdigest().upper()
    expected = [f"Fingerprint:{' '.join(md5[i:i + 2] for i in range(0, 32, 2))}",
                f"SHA256 Fingerprint:{hashlib.sha256(der).hexdigest().upper()}"]
    lines = out.splitlines()
    at = lines.index("The CA certificate's fingerprint, as `crypto ca authenticate` shows it "
                     "on the router:")
    assert lines[at + 1:at + 3] == expected
    # ... and the router's `crypto ca authenticate` prints those very lines.
    router = _describe_ca(cert).splitlines()
    assert expected[0] in router and expected[1] in router


def test_demo_dir_prints_the_command_that_serves_its_ca_again(tmp_path: Path) -> None:
    from engine.demo import run_demo

    out = io.StringIO()
    assert run_demo(out, tmp_path / "demo") == 0
    text = out.getvalue()
    url = re.search(r"enrollment url (http://\S+)", text)
    assert url is not None
    m = re.search(r"^! the CA again, on the URL the trustpoint enrolls at: (.*)$", text, re.M)
    assert m is not None
    argv = shlex.split(m.group(1))
    assert argv[:3] == ["trustledger", "ca", "serve"] and argv[3] == str(tmp_path / "demo" / "ca")
    port = argv[argv.index("--port") + 1]
    assert url.group(1) == f"http://127.0.0.1:{port}"
    # The printed command brings the CA back on that URL (served() adds its own --port 0,
    # which the later --port overrides).
    with served(Path(argv[3]), "--port", port, "--workers", "1") as srv:
        assert srv.url == url.group(1)
