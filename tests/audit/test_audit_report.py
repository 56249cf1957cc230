"""`trustledger audit report`: the timeline table maps every trust event (and shows any
other generically), the page is self-contained (no script, nothing fetched), and a real
headless browser (Debian's chromium) renders the timeline, the trustpoint's lifecycle and
the machines."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from engine.adapters.scep_inprocess import InProcessTransport
from engine.cli import main
from engine.machines.diagrams import MACHINES
from engine.ports import FakeClock
from projections.report_timeline import TIMELINE, entry_for
from tests.trustpoint.tp_support import (
    CHALLENGE,
    CAFactory,
    authenticate,
    configure,
    declare,
    enroll,
    identity_and_key,
    open_device,
)

HAS_TOOLS = shutil.which("chromium") is not None and shutil.which("dot") is not None


@pytest.fixture
def device(tmp_path: Path) -> Path:
    """A device that refused a CA once, then authenticated, enrolled, zeroized its key (the
    trustpoint goes back to authenticated) and described its trustpoint."""
    clock = FakeClock()
    network = InProcessTransport()
    cas = CAFactory(tmp_path, clock, network)
    cas(challenge=CHALLENGE)
    e = open_device(tmp_path / "dev", clock)
    e.ports.scep = network
    try:
        identity_and_key(e)
        declare(e, url="http://ca.invalid")
        assert [type(r.event).__name__ for r in authenticate(e, answer="no").events] == [
            "CACertificateRefused"]
        assert authenticate(e).ok
        assert enroll(e).ok
        clock.advance(3600)
        assert e.execute("crypto key zeroize rsa mykey", answers=["yes"]).ok
        configure(e, "crypto ca trustpoint myca", "description <script>R&D</script>")
    finally:
        e.close()
        cas.close()
    return tmp_path / "dev"


# -- the mapping table ---------------------------------------------------------------------------


def test_every_trust_event_of_this_build_has_an_entry() -> None:
    from events.registry import known_types  # imports every module of EVENT_MODULES, so the
    # check does not depend on which event modules earlier tests happened to load

    trust = {"ConfigurationCommitted", "KeyPairGenerated", "KeyPairZeroized",
             "CACertificateAccepted", "CACertificateRefused", "CertificateReceived",
             "TrustpointCertificatesRemoved", "TrustpoolImported", "TrustpoolBuiltinsRecorded"}
    assert trust <= set(known_types()) and trust <= set(TIMELINE)


def test_an_unknown_type_or_an_unexpected_payload_still_appears() -> None:
    unknown = entry_for("WidgetFrobbed", {"widget": "w1", "blob": b"\x00" * 4,
                                          "trustpoint": "tp9"})
    assert (unknown.kind, unknown.title, unknown.tags) == ("other", "Widget Frobbed", ("tp9",))
    assert ("blob", "4 bytes, SHA-256 DF3F619804A92FDB4057192DC43DD748EA778ADC52BC498CE80524C0"
                    "14B81119") in unknown.facts
    odd = entry_for("CACertificateAccepted", {"trustpoint": "tp"})  # a newer schema, say
    assert odd.kind == "other" and odd.title == "CA Certificate Accepted"


def test_a_refused_validation_is_flagged() -> None:
    entry = entry_for("PeerValidated", {
        "chain": ("AB",), "purpose": "ike", "at": 1_764_201_600_000_000, "peer_name": "vpn1",
        "ok": False, "reasons": ("revoked",), "anchor_source": "trustpoint",
        "anchor_name": "myca", "anchor_sha256": "CD", "path": (), "revocation": (),
        "detail": "the certificate is revoked"})
    assert entry.refused and entry.title == "Validation refused"
    assert ("reasons", "revoked") in entry.facts


# -- the page ------------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.rows: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action") and value:
                self.urls.append(value)
            if tag == "tr" and name == "data-type" and value:
                self.rows.append(value)


@pytest.mark.skipif(not shutil.which("dot"), reason="graphviz's dot is not installed")
def test_the_report_is_one_self_contained_page(device: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    assert main(["audit", "report", str(device), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: 9 events, 1 trustpoint(s)\n"
    page = _Page()
    text = out.read_text()
    page.feed(text)
    assert "script" not in page.tags and "iframe" not in page.tags
    assert [u for u in page.urls if not u.startswith("#")] == []  # nothing fetched
    assert page.rows == ["ConfigurationCommitted", "KeyPairGenerated", "ConfigurationCommitted",
                         "CACertificateRefused", "CACertificateAccepted", "EnrollmentRequested",
                         "CertificateReceived", "KeyPairZeroized", "ConfigurationCommitted"]
    assert "description &lt;script&gt;R&amp;D&lt;/script&gt;" in text  # the log's text escaped
    assert text.count("<svg") == len(MACHINES) + 1  # every machine, and myca's path
    assert re.findall(r"<li><b>(\w+)</b> at seq (\d+)", text) == [
        ("declared", "3"), ("authenticated", "5"), ("enrolling", "6"), ("enrolled", "7"),
        ("authenticated", "8")]  # the zeroize took its certificate


def test_report_refuses_a_directory_without_a_log(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err == (f"% {tmp_path} holds no event log (neither "
                                       f"{tmp_path / 'log'} nor log segments).\n")
    assert not (tmp_path / "r.html").exists()
    missing = tmp_path / "missing"  # as every other reading command says it
    assert main(["audit", "report", str(missing), "-o", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err == f"% {missing}: no such directory.\n"


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", "--window-size=1280,2000", *args],
        capture_output=True, timeout=120, check=False)


def _png_pixels(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG (enough to see it is not blank)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        chunk = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return size[0], size[1], zlib.decompress(idat)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TOOLS, reason="chromium or graphviz is not installed")
def test_a_headless_browser_renders_the_timeline(device: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["audit", "report", str(device), "-o", str(out)]) == 0
    dom = _chromium("--dump-dom", out.as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout.decode()
    rows = re.findall(r'<tr(?: class="refused")? data-type="(\w+)"', rendered)
    assert len(rows) == 9 and rows[3] == "CACertificateRefused"
    for title in ("CA certificate refused for myca", "CA certificate accepted for myca",
                  "Certificate received for myca", "Key pair zeroized: mykey",
                  "Trustpoint myca"):
        assert title in rendered
    shot = tmp_path / "report.png"
    done = _chromium(f"--screenshot={shot}", out.as_uri(), profile=tmp_path / "profile")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    width, height, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    assert len(set(pixels)) > 50  # text, badges and diagrams, not a blank page


@pytest.mark.skipif(not shutil.which("dot"), reason="graphviz's dot is not installed")
def test_report_of_a_fresh_process_reads_every_feature_event(tmp_path: Path) -> None:
    """Review 3: a fresh `trustledger audit report` (lazy CLI imports) must register the
    feature modules' event types before it decodes: here the shipped trustpool's record."""
    import sys

    from engine.engine import Engine
    from engine.trustpool.builtin import certifi_bundle

    with Engine.open(tmp_path / "dev", builtins=certifi_bundle):
        pass
    out = tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-m", "engine.cli", "audit", "report",
                           str(tmp_path / "dev"), "-o", str(out)],
                          capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{out}: 1 events, 0 trustpoint(s)\n"
    assert 'data-type="TrustpoolBuiltinsRecorded"' in out.read_text()


@pytest.mark.skipif(not shutil.which("dot"), reason="graphviz's dot is not installed")
def test_report_writes_through_a_link_and_keeps_it(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Review 6: `-o LINK` replaces the file the link names (the link stays)."""
    from engine.engine import Engine

    with Engine.open(tmp_path / "dev"):
        pass
    target = tmp_path / "pages" / "index.html"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "latest.html"
    link.symlink_to(target)
    assert main(["audit", "report", str(tmp_path / "dev"), "-o", str(link)]) == 0
    assert link.is_symlink() and target.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in target.parent.iterdir()] == ["index.html"]
