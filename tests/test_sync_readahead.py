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


# --------------------------------------------------------------------------------------------
# The board structure: the method list, statuses and priorities are asked for while the boards resolve


@pytest.fixture
def sandbox_client(tmp_path):
    from datetime import datetime, timezone

    from clinicbot.config import load_config
    from clinicbot.jobs.demo import write_sandbox_config
    from clinicbot.phab.conduit import ConduitClient
    from clinicbot.sandbox import Sandbox, generate_scenario

    sb = Sandbox(scenario=generate_scenario(datetime(2026, 11, 20, 9, tzinfo=timezone.utc), size=30))
    sb.start()
    config = load_config(write_sandbox_config(tmp_path / "clinicbot.yaml", sb.url, sb.token))
    client = ConduitClient(sb.url, sb.token, sleep=lambda s: None, retries=0)
    yield client, config
    client.close()
    sb.stop()


INDEPENDENT = {"conduit.query", "maniphest.status.search", "maniphest.priority.search"}


def test_the_structure_calls_that_need_no_board_overlap_the_board_resolution(sandbox_client):
    from clinicbot.phab.boards import load_structure

    client, config = sandbox_client
    real, sent, all_sent = client.call, set(), threading.Event()

    def call(method, **params):
        sent.add(method)
        if INDEPENDENT <= sent:
            all_sent.set()
        if method == "project.search":
            # Sequential reads would ask for the statuses only after the boards: this would hang.
            assert all_sent.wait(HANG), f"only {sorted(sent)} were asked for while the boards resolve"
        return real(method, **params)

    client.call = call  # type: ignore[method-assign]
    boards, statuses, priorities = load_structure(client, config)
    assert boards and statuses and priorities


def test_a_server_without_our_methods_says_so_first_even_when_the_boards_fail_too(sandbox_client):
    from clinicbot.errors import ConduitAPIError, ConduitCapabilityError
    from clinicbot.phab.boards import load_structure

    client, config = sandbox_client
    real = client.call

    def call(method, **params):
        if method == "conduit.query":
            return {"project.search": {}}  # a server lacking most of what clinicbot calls
        if method == "project.search":
            raise ConduitAPIError(method, "ERR-CONDUIT-CORE", "no such method")
        return real(method, **params)

    client.call = call  # type: ignore[method-assign]
    with pytest.raises(ConduitCapabilityError):
        load_structure(client, config)
