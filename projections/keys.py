"""`show crypto key mypubkey ...` and `show crypto key authentication rsa`, from the key ring.

The layout is the reference session's (ca-interoperability.md, "show crypto key mypubkey rsa"):

    Key label:mykey
    Type      :RSA General purpose
    Size      :1024
    Created   :17:33:23 UTC Thu Sep 18 2003
    Data      :
     30819F30 0D06092A 864886F7 0D010101 05000381 8D003081 89028181 00CB8D86
     ...
     0001

`Data` is the DER SubjectPublicKeyInfo in upper-case 8-hex-digit words, 8 words a line, each
line led by one space; entries are separated by a blank line.

Types shown:
- RSA general-purpose keys: `RSA General purpose`;
- RSA usage keys are two entries under the same label, signature first:
  `RSA Usage Keys (Signature)` and `RSA Usage Keys (Encryption)` (IOS lists a usage-key label
  once per pair, naming the usage);
- ECDSA: `ECDSA General Curve Nistp256` with the field size on a `Degree` line (IOS XR's form);
- Ed25519: `ED25519 General purpose`, `Size :256`;
- imported keys: `RSA public key authentication` (usage keys: `... (Signature)` / `(Encryption)`)
  with an `Imported` time instead of `Created`.

`show crypto key mypubkey rsa` lists the imported keys too (the reference's "Import Public Key
to the Router" checks an import with it), after the device's own pairs, in the same layout:
their Type says what they are, `RSA Imported public key, no private key` (usage keys:
`RSA Imported public key (Signature), no private key` / `(Encryption)`).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.keys import ImportedKey, KeyAlgorithm, KeyPair, KeyUsage
from projections.timefmt import ios_time

_USAGE = {KeyUsage.SIGNATURE: " (Signature)", KeyUsage.ENCRYPTION: " (Encryption)"}


def hex_words(der: bytes) -> list[str]:
    """DER as IOS shows it: upper-case 8-hex-digit words, 8 a line, each line led by a space."""
    digits = der.hex().upper()
    words = [digits[i:i + 8] for i in range(0, len(digits), 8)]
    return [" " + " ".join(words[i:i + 8]) for i in range(0, len(words), 8)]


def _entry(label: str, type_: str, size_line: str, when_name: str, when: int,
           der: bytes) -> list[str]:
    return [f"Key label:{label}", f"Type      :{type_}", size_line,
            f"{when_name:<10}:{ios_time(when)}", "Data      :", *hex_words(der)]


def _pair_type(pair: KeyPair) -> str:
    if pair.algorithm is KeyAlgorithm.RSA:
        if pair.usage is KeyUsage.GENERAL:
            return "RSA General purpose"
        return "RSA Usage Keys" + _USAGE[pair.usage]
    if pair.algorithm is KeyAlgorithm.ECDSA:
        return f"ECDSA General Curve {pair.curve.capitalize()}"
    return "ED25519 General purpose"


def render_key_pair(pair: KeyPair) -> list[str]:
    size = (f"Degree    :{pair.size}" if pair.algorithm is KeyAlgorithm.ECDSA
            else f"Size      :{pair.size}")
    return _entry(pair.label, _pair_type(pair), size, "Created", pair.created, pair.public_key)


def render_key_pairs(pairs: Iterable[KeyPair], imported: Iterable[ImportedKey] = ()) -> str:
    """`show crypto key mypubkey <algorithm> [label]`: the entries, blank-line separated; the
    device's own pairs first, then the imported public keys."""
    blocks = ["\n".join(render_key_pair(p)) for p in pairs]
    blocks += ["\n".join(_imported_entry(k, "Imported public key", ", no private key"))
               for k in imported]
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _imported_entry(key: ImportedKey, kind: str, tail: str = "") -> list[str]:
    type_ = f"{key.algorithm.shown} {kind}" + _USAGE.get(key.usage, "") + tail
    return _entry(key.label, type_, f"Size      :{key.size}", "Imported", key.imported,
                  key.public_key)


def render_imported_key(key: ImportedKey) -> list[str]:
    return _imported_entry(key, "public key authentication")


def render_imported_keys(keys: Iterable[ImportedKey]) -> str:
    """`show crypto key authentication rsa [label]`."""
    blocks = ["\n".join(render_imported_key(k)) for k in keys]
    return "\n\n".join(blocks) + "\n" if blocks else ""
