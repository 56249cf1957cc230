"""The event vocabulary and the log.

- `registry`: frozen event dataclasses, their schema versions and upcasters;
- `codec`: the msgpack encoding of one recorded event and of a batch frame;
- `store`: the `EventStore` port, `Recorded` envelopes and `PendingEvent`s;
- `filelog`: `FileEventLog`, the embedded default (segments, CRC32C frames, SHA-256 chain);
- `memory`: `MemoryEventLog`, for tests and embedding.
"""

from events.registry import Event, event, upcaster
from events.store import EventStore, PendingEvent, Recorded

__all__ = ["Event", "EventStore", "PendingEvent", "Recorded", "event", "upcaster"]
