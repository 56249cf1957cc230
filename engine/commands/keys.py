"""Key pairs: `crypto key generate | zeroize | import`, `show crypto key ...`, and their folds.

    crypto key generate rsa [general-keys | usage-keys] [<label>]
    crypto key generate ecdsa {nistp256 | nistp384 | nistp521} [<label>]
    crypto key generate ed25519 [<label>]
    crypto key zeroize {rsa | ecdsa | ed25519} [<label>]
    crypto key import authentication rsa [general-keys | usage-keys] [<label>]
    crypto key zeroize authentication rsa [<label>]
    show crypto key mypubkey {rsa | ecdsa | ed25519} [<label>]
    show crypto key authentication rsa [<label>]

Without a label a command acts on the default key pair `the_default` (zeroize: on every key of
the algorithm, after a yes/no question). Every question is asked before anything is generated
or destroyed, so "no" (or a bad answer) leaves the keystore and the log as they were.

Order of effects (why: engine/keystore.py, "Order against the log"): a new key is generated
and sealed (its wrapped data key written to the keystore) before its event is appended; a
replaced or zeroized key's data key is destroyed *after* `KeyPairZeroized` is durable
(`Outcome.then`). A failed append therefore changes nothing (the new data key is discarded, the
old one untouched); a crash after it leaves a data key that `tidy_keystore` destroys at the next
open.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from engine.destruction import ZEROIZE_QUESTION, confirm, zeroize_notice
from engine.effects import Ask, Effect, Outcome, ReadBlock, Say
from engine.errors import OperatorError, Reason
from engine.grammar import GRAMMAR, ArgKind, ArgSpec
from engine.keys import (
    DEFAULT_LABEL,
    RSA_DEFAULT_BITS,
    RSA_MAX_BITS,
    RSA_MIN_BITS,
    RSA_WEAK_BELOW,
    KeyAlgorithm,
    KeySpec,
    KeyUsage,
)
from events.registry import Event

if TYPE_CHECKING:
    from engine.context import Ctx

G = GRAMMAR

_LABEL_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _label(s: str) -> str:
    if not _LABEL_RE.match(s):
        raise ValueError(s)
    return s


LABEL = ArgSpec(ArgKind("WORD", _label), "RSA key pair label", source="rsa")
EC_LABEL = ArgSpec(ArgKind("WORD", _label), "Key pair label", source="key")

G.describe({
    "key": "Long term key operations",
    "generate": "Generate new keys",
    "zeroize": "Remove keys",
    "import": "Import a key",
    "authentication": "Authentication key (a peer's public key)",
    "rsa": "RSA keys",
    "ecdsa": "ECDSA keys",
    "ed25519": "Ed25519 keys",
    "general-keys": "Generate a general purpose RSA key pair",
    "usage-keys": "Generate separate signature and encryption RSA key pairs",
    "nistp256": "NIST P-256 curve",
    "nistp384": "NIST P-384 curve",
    "nistp521": "NIST P-521 curve",
    "mypubkey": "Show this device's public keys",
})

_PURPOSE = {KeyUsage.GENERAL: "General Purpose Keypair", KeyUsage.SIGNATURE: "Signature Keypair",
            KeyUsage.ENCRYPTION: "Encryption Keypair"}


_SLOW_ABOVE_BITS = 512
"""The reference's "Choosing a key modulus greater than 512 may take a few minutes."."""


def _usages(ctx: Ctx) -> tuple[KeyUsage, ...]:
    if ctx.args.get("usage") == "usage-keys":
        return (KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION)
    return (KeyUsage.GENERAL,)


# -- generate --------------------------------------------------------------------------------------


def _rsa_spec(usage: KeyUsage) -> Generator[Effect, Any, KeySpec]:
    # The reference's words: "... for your General Purpose Keypair" has no full stop, and
    # "greater than 512 may take a few minutes". The range and default are today's (up to
    # 4096, 2048), not its 360-2048 and 1024; the range starts where the key generator does
    # (pyca/cryptography: 1024), so an answer it would refuse is refused here and asked again.
    from engine.keystore import SmallestRsaModulus  # the key effects, when used

    low: int = yield SmallestRsaModulus()
    yield Say(f"Choose the size of the key modulus in the range of {low} to "
              f"{RSA_MAX_BITS} for your {_PURPOSE[usage]}\nChoosing a key modulus greater "
              f"than {_SLOW_ABOVE_BITS} may take a few minutes.\n")
    while True:  # a bad answer asks again, as IOS does; nothing is generated until then
        reply = str((yield Ask(f"How many bits in the modulus [{RSA_DEFAULT_BITS}]:",
                               default=str(RSA_DEFAULT_BITS)))).strip()
        if reply.isdigit() and low <= int(reply) <= RSA_MAX_BITS:
            break
        yield Say(_bad_modulus(reply, low))
    bits = int(reply)
    if bits < RSA_WEAK_BELOW:
        yield Say(f"% Warning: a {bits}-bit RSA key is weak; use {RSA_WEAK_BELOW} bits or "
                  "more.\n")
    return KeySpec(KeyAlgorithm.RSA, bits)


def _bad_modulus(reply: str, low: int) -> str:
    """The line before the modulus question is asked again: a size in IOS's range that this
    build's key generator cannot make says so."""
    why = ""
    if reply.isdigit() and RSA_MIN_BITS <= int(reply) < low:
        why = f" this build's crypto library makes RSA keys of {low} bits or more;"
    return f"% Invalid modulus size {reply!r}:{why} choose {low} to {RSA_MAX_BITS} bits.\n"


def _generate(ctx: Ctx, algorithm: KeyAlgorithm, usages: tuple[KeyUsage, ...],
              fixed: KeySpec | None) -> Generator[Effect, Any, Outcome]:
    from engine.keystore import DestroyKeys, GenerateKeyPairs  # the key effects, when used
    from events.keys import KeyPairGenerated, KeyPairZeroized

    label: str = ctx.args.get("label", DEFAULT_LABEL)
    yield Say(f"The name for the keys will be:{label}\n")
    old = ctx.state.keys.pairs_of(algorithm, label)
    if old:
        yield Say(f"% You already have {algorithm.shown} keys defined named {label}.\n")
        if not (yield from confirm("Do you really want to replace them? [yes/no]:")):
            return Outcome()
    specs = []
    for usage in usages:
        specs.append(fixed if fixed is not None else (yield from _rsa_spec(usage)))
    yield Say(f"Generating {algorithm.shown} keys ...\n")
    events: list[Event] = []
    sealed_keys = yield GenerateKeyPairs(tuple(specs))
    for usage, spec, sealed in zip(usages, specs, sealed_keys, strict=True):
        events.append(KeyPairGenerated(sealed.key_id, label, algorithm.value, usage.value,
                                       spec.size, spec.curve, sealed.public_key,
                                       sealed.ciphertext, sealed.nonce, sealed.sealing))
    then: tuple[DestroyKeys, ...] = ()
    if old:
        ids = tuple(p.key_id for p in old)
        then = (DestroyKeys(ids),)
        events.insert(0, KeyPairZeroized(label, algorithm.value, ids, "replaced"))
    return Outcome(events=events, output="Done w/ crypto generate keypair\n[OK]", then=then)


@G.action("crypto key generate rsa [{usage: general-keys | usage-keys}] [<label>]",
          help="Generate RSA keys", args={"label": LABEL})
def generate_rsa(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    return _generate(ctx, KeyAlgorithm.RSA, _usages(ctx), None)


@G.action("crypto key generate ecdsa {curve: nistp256 | nistp384 | nistp521} [<label>]",
          help="Generate ECDSA keys", args={"label": EC_LABEL})
def generate_ecdsa(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    return _generate(ctx, KeyAlgorithm.ECDSA, (KeyUsage.GENERAL,),
                     KeySpec.ecdsa(ctx.args["curve"]))


@G.action("crypto key generate ed25519 [<label>]", help="Generate Ed25519 keys",
          args={"label": EC_LABEL})
def generate_ed25519(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    return _generate(ctx, KeyAlgorithm.ED25519, (KeyUsage.GENERAL,),
                     KeySpec(KeyAlgorithm.ED25519, 256))


# -- zeroize ---------------------------------------------------------------------------------------


@G.action("crypto key zeroize {algorithm: rsa | ecdsa | ed25519} [<label>]",
          help="Remove keys (crypto-shredding: the private keys become unrecoverable)",
          args={"label": EC_LABEL})
def zeroize(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    from engine.keystore import DestroyKeys  # the key effects, when used
    from events.keys import KeyPairZeroized

    algorithm = KeyAlgorithm(ctx.args["algorithm"])
    ring = ctx.state.keys
    label: str | None = ctx.args.get("label")
    if label is not None:
        if not ring.pairs_of(algorithm, label):
            raise OperatorError(Reason.NOT_FOUND,
                               f"No {algorithm.shown} key pair named '{label}'.")
        labels: tuple[str, ...] = (label,)
        yield Say(f"% The {algorithm.shown} keys named '{label}' will be removed.\n")
    else:
        labels = ring.labels(algorithm)
        if not labels:
            raise OperatorError(Reason.NOT_FOUND, f"No {algorithm.shown} keys to zeroize.")
        yield Say(f"% All {algorithm.shown} keys will be removed.\n% All router certificates "
                  "issued using these keys will also be removed.\n")
    key_ids = [p.key_id for lb in labels for p in ring.pairs_of(algorithm, lb)]
    yield Say(zeroize_notice(ctx.state, key_ids))
    if not (yield from confirm(ZEROIZE_QUESTION)):
        return Outcome()
    events = [KeyPairZeroized(lb, algorithm.value,
                              tuple(p.key_id for p in ring.pairs_of(algorithm, lb)), "zeroize")
              for lb in labels]
    return Outcome(events=events, then=(DestroyKeys(tuple(k for ev in events
                                                          for k in ev.key_ids)),))


# -- import ----------------------------------------------------------------------------------------

END_OF_PASTE = "End with a blank line or the word \"quit\" on a line by itself\n"
"""The end marker every paste prompt says, as `crypto ca authenticate` and `crypto ca import`
say it (one line for an operator's expect script to wait for)."""

_INTRO = {KeyUsage.GENERAL: "Enter the public key",
          KeyUsage.SIGNATURE: "Enter the signature public key",
          KeyUsage.ENCRYPTION: "Enter the encryption public key"}


@G.action("crypto key import authentication rsa [{usage: general-keys | usage-keys}] [<label>]",
          help="Import a peer's RSA public key", args={"label": LABEL},
          words={"general-keys": "Import a general purpose RSA public key",
                 "usage-keys": "Import separate signature and encryption RSA public keys"})
def import_rsa(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    from engine.keyimport import parse_public_key
    from events.keys import PublicKeyImported, PublicKeyRemoved

    label: str = ctx.args.get("label", DEFAULT_LABEL)
    events: list[Event] = []
    if ctx.state.keys.imported_of(KeyAlgorithm.RSA, label):
        yield Say(f"% You already have an RSA public key imported named {label}.\n")
        if not (yield from confirm("Do you really want to replace it? [yes/no]:")):
            return Outcome()
        events.append(PublicKeyRemoved(label, KeyAlgorithm.RSA.value, "replaced"))
    for usage in _usages(ctx):
        text = yield ReadBlock(f"{_INTRO[usage]} (base64 DER SubjectPublicKeyInfo, PKCS#1 or "
                               f"PEM).\n{END_OF_PASTE}")
        parsed = parse_public_key(str(text), KeyAlgorithm.RSA)
        events.append(PublicKeyImported(label, KeyAlgorithm.RSA.value, usage.value, parsed.size,
                                        parsed.spki, parsed.pasted_format))
    return Outcome(events=events, output="[OK]")


@G.action("crypto key zeroize authentication rsa [<label>]",
          help="Remove imported RSA public keys", args={"label": LABEL})
def zeroize_imported(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    from events.keys import PublicKeyRemoved

    ring = ctx.state.keys
    label: str | None = ctx.args.get("label")
    if label is not None:
        if not ring.imported_of(KeyAlgorithm.RSA, label):
            raise OperatorError(Reason.NOT_FOUND, f"No imported RSA public key named "
                                                 f"'{label}'.")
        labels: tuple[str, ...] = (label,)
    else:
        labels = ring.imported_labels(KeyAlgorithm.RSA)
        if not labels:
            raise OperatorError(Reason.NOT_FOUND, "No imported RSA public keys to remove.")
        if not (yield from confirm("Do you really want to remove all imported RSA public "
                                   "keys? [yes/no]:")):
            return Outcome()
    return Outcome(events=[PublicKeyRemoved(lb, KeyAlgorithm.RSA.value, "zeroize")
                           for lb in labels])


# -- show ------------------------------------------------------------------------------------------


@G.action("show crypto key mypubkey {algorithm: rsa | ecdsa | ed25519} [<label>]",
          help="Show this device's public keys", args={"label": EC_LABEL})
def show_mypubkey(ctx: Ctx) -> Outcome:
    from engine.views.state import KeyPairsView

    algorithm = KeyAlgorithm(ctx.args["algorithm"])
    label: str | None = ctx.args.get("label")
    ring = ctx.state.keys
    # The reference's "Import Public Key to the Router" checks an import with this command:
    # imported public keys of the algorithm follow the device's own pairs.
    if label is None:
        return Outcome(output=KeyPairsView(ring.all_pairs(algorithm),
                                           ring.all_imported(algorithm)))
    pairs, imported = ring.pairs_of(algorithm, label), ring.imported_of(algorithm, label)
    if not pairs and not imported:
        raise OperatorError(Reason.NOT_FOUND, f"No {algorithm.shown} key pair named '{label}'.")
    return Outcome(output=KeyPairsView(pairs, imported))


@G.action("show crypto key authentication rsa [<label>]",
          help="Show imported RSA public keys", args={"label": LABEL})
def show_imported(ctx: Ctx) -> Outcome:
    from engine.views.state import ImportedKeysView

    label: str | None = ctx.args.get("label")
    ring = ctx.state.keys
    if label is None:
        return Outcome(output=ImportedKeysView(ring.all_imported(KeyAlgorithm.RSA)))
    keys = ring.imported_of(KeyAlgorithm.RSA, label)
    if not keys:
        raise OperatorError(Reason.NOT_FOUND, f"No imported RSA public key named '{label}'.")
    return Outcome(output=ImportedKeysView(keys))

