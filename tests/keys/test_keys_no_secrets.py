"""No private key material, in any encoding, ever lands in the data directory in clear; secrets
never reach a log line; the key ring survives snapshots."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from structlog.testing import capture_logs

from engine import Engine, snapshot
from engine.keys import KeyAlgorithm, PrivateKey
from engine.keystore import (
    REDACTED,
    DirectoryKeystore,
    KeyPool,
    _unwrap,
    keystore_of,
    load_master_key,
    redact_secrets,
)
from engine.state import DeviceState

Enc = serialization.Encoding
Priv = serialization.PrivateFormat


def _int_forms(n: int) -> list[bytes]:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return [raw, raw.hex().encode(), raw.hex().upper().encode(), str(n).encode()]


def needles(key: PrivateKey) -> list[bytes]:
    """Every form a careless implementation might write a private key in."""
    none = serialization.NoEncryption()
    found = [key.private_bytes(Enc.DER, Priv.PKCS8, none)]
    pems = [key.private_bytes(Enc.PEM, Priv.PKCS8, none)]
    if isinstance(key, rsa.RSAPrivateKey):
        found.append(key.private_bytes(Enc.DER, Priv.TraditionalOpenSSL, none))
        pems.append(key.private_bytes(Enc.PEM, Priv.TraditionalOpenSSL, none))
        nums = key.private_numbers()
        for n in (nums.p, nums.q, nums.d, nums.dmp1, nums.dmq1, nums.iqmp):
            found += _int_forms(n)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        found += _int_forms(key.private_numbers().private_value)
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        raw = key.private_bytes(Enc.Raw, Priv.Raw, none)
        found += [raw, raw.hex().encode(), base64.b64encode(raw)]
    for pem in pems:  # each base64 line of the PEM body, and the whole body
        body = pem.splitlines()[1:-1]
        found += [line for line in body if len(line) >= 32] + [b"".join(body)]
    return found


def every_file(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_no_private_key_material_in_any_file_of_the_data_dir(
        open_disk: Callable[..., Engine], data_dir: Path, pool: KeyPool) -> None:
    e = open_disk()
    outputs = [
        e.execute("crypto key generate rsa usage-keys vpn", answers=["1024", "1024"]),
        e.execute("crypto key generate ecdsa nistp384 ec"),
        e.execute("crypto key generate ed25519 ed"),
        e.execute("crypto key generate rsa vpn", answers=["yes", "1024"]),  # replaces
    ]
    e.ports.keygen = None  # one real 2048-bit generation, default answer
    outputs.append(e.execute("crypto key generate rsa", answers=[""]))
    assert all(r.ok for r in outputs), [r.output for r in outputs]
    store = keystore_of(e.ports)
    real = store.private_key(e.state.keys.pairs_of(KeyAlgorithm.RSA, "the_default")[0].sealed)
    keys: list[PrivateKey] = [*pool.handed_out, real]
    assert len(keys) == 6
    assert isinstance(store, DirectoryKeystore)
    master = load_master_key(data_dir, {}, create=False)
    deks = [_unwrap(master, k, (data_dir / "keystore" / f"{k}.dek").read_bytes())
            for k in store.key_ids()]
    assert len(deks) == 4  # the two usage-key DEKs of the replaced "vpn" were shredded
    e.close()  # writes a snapshot too

    files = every_file(data_dir)
    assert any(p.parent.name == "log" for p in files)
    assert any(p.suffix == ".snap" for p in files)
    for key in keys:
        for needle in needles(key):
            for path, content in files.items():
                assert needle not in content, f"private key material in {path}"
            assert all(needle.decode("latin-1") not in r.output for r in outputs)
    for dek in deks:  # a data key is only ever on disk wrapped
        for path, content in files.items():
            assert dek not in content and dek.hex().encode() not in content, path


def test_the_key_ring_round_trips_through_a_snapshot(engine: Engine) -> None:
    assert engine.execute("crypto key generate rsa usage-keys vpn", answers=["1024", "1024"]).ok
    assert engine.execute("crypto key generate ecdsa nistp256").ok
    assert engine.execute("crypto key zeroize ecdsa", answers=["yes"]).ok
    assert engine.execute("crypto key generate ed25519 e").ok
    snap = snapshot.decode(snapshot.encode(engine.state, (engine.state.seq, b"h" * 32)))
    state = snap.state
    assert isinstance(state, DeviceState) and (snap.seq, snap.chain_hash) == (5, b"h" * 32)
    assert state.keys == engine.state.keys
    assert Engine.frozen(state).execute("show crypto key mypubkey rsa").output == \
        engine.execute("show crypto key mypubkey rsa").output


# -- log redaction ---------------------------------------------------------------------------------


def test_redaction_processor_masks_secrets_by_name_type_and_content(
        pregenerated: list[PrivateKey]) -> None:
    key = pregenerated[0]
    pem = key.private_bytes(Enc.PEM, Priv.PKCS8, serialization.NoEncryption()).decode()
    log = structlog.get_logger("test")
    with capture_logs(processors=[redact_secrets]) as logs:
        log.info("key.sealed", key_id="ab" * 16, private_key=key, dek=b"\x01" * 32,
                 blob=b"\x02" * 48, note=f"pasted: {pem} end", obj=key, master_key="x" * 64,
                 label="vpn", size=2048, static_challenge=False, challenge_file=None,
                 challenge="s3cret")
    (entry,) = logs
    assert entry["private_key"] == REDACTED and entry["dek"] == REDACTED
    assert entry["master_key"] == REDACTED and entry["obj"] == REDACTED
    assert entry["blob"] == "<48 bytes redacted>"
    assert entry["note"] == f"pasted: {REDACTED}\n end"
    assert (entry["key_id"], entry["label"], entry["size"]) == ("ab" * 16, "vpn", 2048)
    # A yes/no under a secret-sounding name is no secret; the secret itself still is.
    assert (entry["static_challenge"], entry["challenge_file"]) == (False, None)
    assert entry["challenge"] == REDACTED
    assert entry["event"] == "key.sealed"
    flat = repr(entry)
    assert "PRIVATE KEY-----" not in flat and pem.splitlines()[1] not in flat
