"""Event types: frozen, slotted dataclasses with a name and an explicit schema version.

An event type is declared once:

    @event("HostnameSet", version=1)
    @dataclass(frozen=True, slots=True)
    class HostnameSet(Event):
        hostname: str

Its payload on disk is the dict of its fields, which must be msgpack-native values (str, int,
bytes, bool, None, lists/tuples and str-keyed dicts of those). When a type's schema changes, its
version goes up and an upcaster turns the old payload into the new one:

    @upcaster("HostnameSet", from_version=1)
    def _hostname_v1_to_v2(payload): return {**payload, "source": "cli"}

Reading always yields the current version; the stored bytes are never rewritten.

Where each type is declared is written out once, in `EVENT_MODULES` (type name -> module):
decoding a stored event of a type not loaded yet imports its module then, so a command that
opens the data directory from a snapshot at the head defines none of the ~50 event classes
(issue 12's start-up row). A type declared in the `events` package must be listed there
under its own module (`@event` refuses it otherwise); tests/events/test_event_modules.py
checks the list names every such type and nothing else. Types declared elsewhere (tests,
benchmarks) register when their module is imported, as before.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


class Event:
    """Base of every event type; `type_name` and `version` are set by `@event`."""

    __slots__ = ()
    type_name: ClassVar[str] = ""
    version: ClassVar[int] = 0


E = TypeVar("E", bound=type[Event])

_TYPES: dict[str, type[Event]] = {}
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}
_FIELDS: dict[str, tuple[str, ...]] = {}
_PAYLOAD_OF: dict[str, Callable[[Any], Payload]] = {}


EVENT_MODULES: Mapping[str, str] = {
    "AuditKeyCreated": "events.audit",
    "CAInitialized": "events.ca",
    "CARolledOver": "events.ca",
    "CRLIssued": "events.ca",
    "CertificateIssued": "events.ca",
    "CertificateRevoked": "events.ca",
    "ChallengeConsumed": "events.ca",
    "ChallengeMinted": "events.ca",
    "RequestApproved": "events.ca",
    "RequestReceived": "events.ca",
    "RequestRejected": "events.ca",
    "ClockSet": "events.clock",
    "ConfigurationCommitted": "events.device",
    "KeyPairGenerated": "events.keys",
    "KeyPairZeroized": "events.keys",
    "PublicKeyImported": "events.keys",
    "PublicKeyRemoved": "events.keys",
    "CertificateExpiryWarned": "events.renewal",
    "NextCertificateActivated": "events.renewal",
    "RenewalCertificateReceived": "events.renewal",
    "RenewalFailed": "events.renewal",
    "RenewalPending": "events.renewal",
    "RenewalRequested": "events.renewal",
    "CrlCacheCleared": "events.revocation",
    "CrlFetchFailed": "events.revocation",
    "CrlFetched": "events.revocation",
    "ShadowCAAccepted": "events.rollover",
    "ShadowCAActivated": "events.rollover",
    "ShadowCAFetchFailed": "events.rollover",
    "ShadowCANotOffered": "events.rollover",
    "ShadowCertificateActivated": "events.rollover",
    "CACertificateAccepted": "events.trustpoint",
    "CACertificateRefused": "events.trustpoint",
    "CertificateReceived": "events.trustpoint",
    "EnrollmentFailed": "events.trustpoint",
    "EnrollmentPending": "events.trustpoint",
    "EnrollmentRequested": "events.trustpoint",
    "RouterCertificateRevoked": "events.trustpoint",
    "TrustpointCertificatesRemoved": "events.trustpoint",
    "TrustpoolBuiltinsRecorded": "events.trustpool",
    "TrustpoolCleaned": "events.trustpool",
    "TrustpoolImported": "events.trustpool",
    "TrustpoolPolicyWarned": "events.trustpool",
    "TrustpoolUpdateFailed": "events.trustpool",
    "PeerValidated": "events.validation",
    "CheckpointCosigned": "events.witness",
    "CheckpointRefused": "events.witness",
    "WitnessLogFollowed": "events.witness",
}
"""Every event type of the `events` package, by its stored name: the module declaring it."""
_LOADED_ALL: list[bool] = []  # every module in EVENT_MODULES imported (by known_types)


class UnknownEventType(LookupError):
    """A stored event names a type this build does not know (a newer writer, or damage)."""


def event(name: str, version: int = 1) -> Callable[[E], E]:
    """Register a frozen dataclass as the event type `name` at schema `version`."""

    def register(cls: E) -> E:
        if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
            raise TypeError(f"{cls.__name__} must be a frozen dataclass")
        if name in _TYPES and _TYPES[name] is not cls:
            raise TypeError(f"event type {name!r} is registered twice")
        if cls.__module__.startswith("events.") and EVENT_MODULES.get(name) != cls.__module__:
            raise TypeError(f"event type {name!r} is not listed as {cls.__module__}'s in "
                            "events.registry.EVENT_MODULES")
        cls.type_name = name
        cls.version = version
        _TYPES[name] = cls
        _FIELDS[name] = tuple(f.name for f in dataclasses.fields(cls))
        _PAYLOAD_OF[name] = _payload_function(_FIELDS[name])
        return cls

    return register


def upcaster(name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register the function that turns payload `name`@from_version into from_version + 1."""

    def register(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(name, from_version)] = fn
        return fn

    return register


def payload_of(ev: Event) -> Payload:
    """The stored form of an event: its fields by name (shallow; values are msgpack-native)."""
    return _PAYLOAD_OF[ev.type_name](ev)


def _payload_function(fields: tuple[str, ...]) -> Callable[[Any], Payload]:
    """`lambda ev: {"a": ev.a, ...}` for one type's fields, built once at registration (as
    dataclasses builds `__init__`): on the append path it is 2.5x faster than a loop of
    getattr. Field names are identifiers (dataclasses refuses others), so the source is
    exactly a dict display of attribute loads."""
    assert all(f.isidentifier() for f in fields)
    source = "lambda ev: {" + ", ".join(f"{f!r}: ev.{f}" for f in fields) + "}"
    fn: Callable[[Any], Payload] = eval(source, {})  # noqa: S307  (see above)
    return fn


def event_from(name: str, version: int, payload: Mapping[str, Any]) -> Event:
    """Rebuild an event from its stored form, upcasting old schema versions first.

    `payload` is what `events.codec` decodes (arrays already tuples) or what `payload_of`
    gave; lists are turned into tuples only on the upcasting path, where upcasters may
    build them. Keys this build does not know are dropped."""
    cls = _TYPES.get(name) or event_type(name)  # loaded already, else its module now
    if cls is None:
        raise UnknownEventType(name)
    if version == cls.version:
        try:
            return cls(**payload)  # replay's hot path: one call, no copies
        except TypeError:
            pass  # an unknown or a missing field: the careful path below decides
    data = dict(payload)
    while version < cls.version:
        step = _UPCASTERS.get((name, version))
        if step is None:
            raise UnknownEventType(f"{name} v{version} (no upcaster to v{version + 1})")
        data = step(data)
        version += 1
    if version > cls.version:
        raise UnknownEventType(f"{name} v{version} is newer than this build (v{cls.version})")
    fields = _FIELDS[name]
    return cls(**{k: _thaw(data[k]) for k in fields if k in data})


def _thaw(value: Any) -> Any:
    # msgpack returns lists; events keep tuples so they stay hashable and immutable.
    if isinstance(value, list):
        return tuple(_thaw(v) for v in value)
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    return value


def event_type(name: str) -> type[Event] | None:
    """The class of event type `name`, its module imported if it was not yet (None: a type
    this build does not know)."""
    cls = _TYPES.get(name)
    if cls is None and name in EVENT_MODULES:
        importlib.import_module(EVENT_MODULES[name])  # its @event declarations register it
        cls = _TYPES.get(name)
    return cls


def known_types() -> Mapping[str, type[Event]]:
    """Every registered event type: all of `EVENT_MODULES` (imported the first time), and
    those registered by other modules already imported."""
    if not _LOADED_ALL:
        for module in sorted(set(EVENT_MODULES.values())):
            importlib.import_module(module)
        _LOADED_ALL.append(True)
    return dict(_TYPES)
