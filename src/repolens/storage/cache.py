"""A bounded in-process cache of immutable reads, dropped whenever the index changes.

Every search reads the same kinds of rows again: the candidate artifacts (a few hundred rows
joined with their files) and the text of the files its hits come from (a decompressed blob
each). Under concurrent load those reads were a third of the server's time. Both are pure
functions of the stored content, so they are kept here, keyed by row id, and the whole cache
is dropped when the store's content generation moves (a commit that changed indexed content,
in any process). Sizes are bounded so a server with many large repositories stays in memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class GenerationCache(Generic[K, V]):
    """A thread-safe LRU map whose entries are only valid for one content generation.

    ``weigh`` gives an entry's cost (1 per row, or characters of text); the least recently used
    entries are evicted once the total passes ``capacity``.
    """

    def __init__(self, capacity: int, weigh: Callable[[V], int] = lambda _: 1) -> None:
        self.capacity = capacity
        self._weigh = weigh
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._total = 0
        self._generation: object = None
        self._lock = threading.Lock()

    def sync(self, generation: object) -> None:
        """Drop everything if the content changed since the entries were read."""
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._total = 0
                self._generation = generation

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def get_many(self, keys: Iterable[K]) -> tuple[dict[K, V], list[K]]:
        """(the cached values, the keys not cached), under one acquisition of the lock."""
        found: dict[K, V] = {}
        missing: list[K] = []
        with self._lock:
            entries = self._entries
            for key in keys:
                entry = entries.get(key)
                if entry is None:
                    missing.append(key)
                else:
                    entries.move_to_end(key)
                    found[key] = entry[0]
        return found, missing

    def put(self, key: K, value: V, generation: object) -> None:
        """Keep ``value``, read after ``generation`` was read; refused if the content moved since."""
        weight = self._weigh(value)
        if weight > self.capacity:
            return  # one huge value would evict everything else
        with self._lock:
            if generation != self._generation:
                return  # a commit landed between the read and now: the value may be stale
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= old[1]
            self._entries[key] = (value, weight)
            self._total += weight
            while self._total > self.capacity:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._total -= evicted

    def __len__(self) -> int:
        return len(self._entries)
