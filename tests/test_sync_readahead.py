"""Read ahead (clinicbot/phab/readahead.py): a cold sync's next task page is on its way while the
current one is stored (issue 12: the cold sync within 1.5 × its round-trip bound). Order, errors
and early stops behave as with the plain iterator; no timing is asserted (waits only bound a hang)."""

from __future__ import annotations

import threading

import pytest

from clinicbot.phab.readahead import read_ahead

HANG = 10.0  # seconds: only a bound on a hang, never a speed target


def test_items_come_in_order_and_the_next_is_fetched_while_the_caller_holds_one():
    fetching = {i: threading.Event() for i in range(5)}

    def source():
        for i in range(5):
            fetching[i].set()
            yield i

    seen = []
    for item in read_ahead(source()):
        if item < 4:
            # While the caller still holds `item`, the thread is already fetching the next one.
            assert fetching[item + 1].wait(HANG)
        seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_at_most_depth_items_wait_beyond_the_one_the_caller_holds():
    started = []
    gate = threading.Event()

    def source():
        for i in range(10):
            started.append(i)
            yield i

    it = read_ahead(source(), depth=2)
    assert next(it) == 0
    gate.wait(0.2)  # give the thread every chance to run ahead (not a timing assertion)
    assert len(started) <= 1 + 2  # the one held and two waiting, no more
    assert list(it) == list(range(1, 10))


def test_an_error_is_raised_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise RuntimeError("page 3 failed")

    got = []
    with pytest.raises(RuntimeError, match="page 3 failed"):
        for item in read_ahead(source()):
            got.append(item)
    assert got == [1, 2]


def test_a_caller_that_stops_early_stops_the_thread():
    produced = []

    def source():
        for i in range(1000):
            produced.append(i)
            yield i

    for item in read_ahead(source(), name="read-ahead-test"):
        if item == 2:
            break
    assert not [t for t in threading.enumerate() if t.name == "read-ahead-test"]
    assert len(produced) <= 5  # not the 1000 items: the thread stopped with the caller


def test_a_bad_depth_is_refused():
    with pytest.raises(ValueError):
        list(read_ahead([1], depth=0))
