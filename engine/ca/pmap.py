"""`PMap`: a small persistent (immutable, structure-sharing) mapping for the CA state.

`evolve` must return a new state and leave the old one untouched. Copying a whole dict per
event would make replay quadratic in the number of certificates; a `PMap` keeps its items in
64 buckets chosen by key hash, so `set` copies the bucket tuple (64 references) and one bucket
(about n/64 items). Reads are two index operations. Keys are strings (transaction IDs, serials,
hex digests); iteration is in insertion order within a bucket, so callers that present items to
people sort them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

V = TypeVar("V")

_BUCKETS = 64


class PMap(Mapping[str, V], Generic[V]):
    __slots__ = ("_buckets", "_len")

    def __init__(self, buckets: tuple[dict[str, V], ...] | None = None, length: int = 0) -> None:
        self._buckets: tuple[dict[str, V], ...] = (
            buckets if buckets is not None else tuple({} for _ in range(_BUCKETS)))
        self._len = length

    @staticmethod
    def _index(key: str) -> int:
        return hash(key) % _BUCKETS

    def __getitem__(self, key: str) -> V:
        return self._buckets[self._index(key)][key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._buckets[self._index(key)]

    def __iter__(self) -> Iterator[str]:
        for bucket in self._buckets:
            yield from bucket

    def __len__(self) -> int:
        return self._len

    def set(self, key: str, value: V) -> PMap[V]:
        """A new map with `key` bound to `value`; this one is unchanged."""
        i = self._index(key)
        old = self._buckets[i]
        bucket = dict(old)
        bucket[key] = value
        buckets = (*self._buckets[:i], bucket, *self._buckets[i + 1:])
        return PMap(buckets, self._len + (0 if key in old else 1))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return len(self) == len(other) and all(
            k in other and other[k] == v for k, v in self.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PMap({dict(self.items())!r})"
