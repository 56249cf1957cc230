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
"""

from __future__ import annotations

import dataclasses
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


class UnknownEventType(LookupError):
    """A stored event names a type this build does not know (a newer writer, or damage)."""


def event(name: str, version: int = 1) -> Callable[[E], E]:
    """Register a frozen dataclass as the event type `name` at schema `version`."""

    def register(cls: E) -> E:
        if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
            raise TypeError(f"{cls.__name__} must be a frozen dataclass")
        if name in _TYPES and _TYPES[name] is not cls:
            raise TypeError(f"event type {name!r} is registered twice")
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
    cls = _TYPES.get(name)
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


def known_types() -> Mapping[str, type[Event]]:
    return dict(_TYPES)
