"""Read ahead: the next item of a slow iterator (a Conduit search's next page) is fetched in a
thread while the caller works on the current one.

A cold sync reads ``maniphest.search`` page after page, each page one round trip, and between
two pages it parses and stores the one it has. Done in turn, the sync takes the round trips
*plus* its own work; with the next page on its way while a page is stored, it takes about the
larger of the two (issue 12: the cold sync within 1.5 × its round-trip bound).

Order, errors and memory are those of the plain iterator: items come in their order; an
exception raised while fetching item k is raised to the caller after items 0..k-1 were handed
out (so a sync that fails late has stored every page before the failure); at most ``depth``
items wait beyond the one the caller holds. A caller that stops early (an exception of its own,
``break``) stops the thread after the fetch in flight, which it waits for, so no request outlives
the caller.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_END = object()


def read_ahead(items: Iterable[T], depth: int = 1, *, name: str = "read-ahead") -> Iterator[T]:
    """Yield ``items`` in order while one thread fetches up to ``depth`` of the next ones."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    slots = threading.Semaphore(depth)  # items the thread may fetch before the caller takes one
    out: queue.SimpleQueue[tuple[object, BaseException | None]] = queue.SimpleQueue()
    stop = threading.Event()
    source = iter(items)

    def produce() -> None:
        try:
            while True:
                slots.acquire()
                if stop.is_set():
                    return
                try:
                    item = next(source)
                except StopIteration:
                    out.put((_END, None))
                    return
                out.put((item, None))
        except BaseException as exc:  # handed to the caller, in order, after the items before it
            out.put((_END, exc))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, error = out.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            slots.release()
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        slots.release()  # wakes the thread if it waits for a slot; it sees `stop` and ends
        thread.join()
