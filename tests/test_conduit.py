"""The Conduit client against canned answers (responses) and a scripted fake transport."""

from __future__ import annotations

import json
import logging

import pytest
import requests
import responses

from clinicbot.phab.conduit import ConduitClient, HTTPAnswer, Secret, TransportFailure, is_write, redact
from clinicbot.errors import (
    ConduitAPIError,
    ConduitCapabilityError,
    ConduitProtocolError,
    ConduitTransportError,
    ConduitWriteUncertain,
)
from conduit_matchers import conduit_params, decoded_params
from conftest import TEST_TOKEN, recording, recorded_result

URL = "https://phab.example.org/"


def envelope(result=None, code=None, info=None) -> str:
    return json.dumps({"result": result, "error_code": code, "error_info": info})


class ScriptedTransport:
    """Answers from a script: each item is an HTTPAnswer or a TransportFailure to raise."""

    def __init__(self, *script):
        self.script = list(script)
        self.sent: list[tuple[str, dict]] = []

    def post(self, url, data, timeout):
        self.sent.append((url, data))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        pass


def client_with(*script, retries=4) -> tuple[ConduitClient, ScriptedTransport]:
    transport = ScriptedTransport(*script)
    sleeps: list[float] = []
    client = ConduitClient(URL, TEST_TOKEN, transport=transport, retries=retries, sleep=sleeps.append)
    client.sleeps = sleeps  # type: ignore[attr-defined]
    return client, transport


def ok(result) -> HTTPAnswer:
    return HTTPAnswer(200, envelope(result))


# -- the wire ----------------------------------------------------------------------------------


@responses.activate
def test_call_posts_params_json_with_token_inside_to_api_method():
    responses.post(URL + "api/user.whoami", body=json.dumps(recording("user.whoami")["response"]),
                   match=[conduit_params({}, strict=True)])
    client = ConduitClient(URL, TEST_TOKEN)
    assert client.call("user.whoami")["userName"] == "admin"
    sent = responses.calls[0].request
    params = decoded_params(sent)
    assert params["__conduit__"] == {"token": TEST_TOKEN}
    assert "output=json" in sent.body


@responses.activate
def test_search_follows_cursor_after_with_limit_100():
    page1 = recorded_result("maniphest.search--paging-limit3-page1")
    page2 = recorded_result("maniphest.search--paging-limit3-page2-after")
    last = dict(page2, cursor=dict(page2["cursor"], after=None))
    responses.post(URL + "api/maniphest.search", body=envelope(page1),
                   match=[conduit_params({"limit": 100, "constraints": {"statuses": ["open"]}}, strict=True)])
    responses.post(URL + "api/maniphest.search", body=envelope(last),
                   match=[conduit_params({"after": page1["cursor"]["after"], "limit": 100})])
    client = ConduitClient(URL, TEST_TOKEN)
    ids = [t["id"] for t in client.search("maniphest.search", constraints={"statuses": ["open"]})]
    assert ids == [t["id"] for t in page1["data"]] + [t["id"] for t in page2["data"]]
    assert client.stats.calls["maniphest.search"] == 2


def test_search_never_asks_for_more_than_100():
    client, transport = client_with(ok({"data": [], "cursor": {"after": None}}))
    list(client.search("maniphest.search", limit=500))
    assert json.loads(transport.sent[0][1]["params"])["limit"] == 100


def test_repeated_cursor_is_a_protocol_error_not_an_endless_loop():
    page = {"data": [{"id": 1}], "cursor": {"after": "1"}}
    client, _ = client_with(ok(page), ok(page), ok(page))
    with pytest.raises(ConduitProtocolError, match="repeated"):
        list(client.search("maniphest.search"))


def test_api_error_carries_method_code_and_info():
    rec = recording("error--limit-over-100")["response"]
    client, _ = client_with(HTTPAnswer(200, json.dumps(rec)))
    with pytest.raises(ConduitAPIError) as info:
        client.call("maniphest.search", limit=101)
    err = info.value
    assert (err.method, err.code) == ("maniphest.search", "ERR-INVALID-PAGE-SIZE")
    assert "maniphest.search" in str(err) and "ERR-INVALID-PAGE-SIZE" in str(err)
    assert "\n" not in str(err)


def test_wrong_token_error_never_shows_the_token():
    rec = recording("error--wrong-token")["response"]
    # The real server echoes the token it was given in error_info.
    body = json.dumps(rec).replace("api-aaaaaaaaaaaaaaaaaaaaaaaaaaaa", TEST_TOKEN)
    client, _ = client_with(HTTPAnswer(200, body))
    with pytest.raises(ConduitAPIError) as info:
        client.call("user.whoami")
    assert info.value.code == "ERR-INVALID-AUTH"
    assert TEST_TOKEN not in str(info.value) and TEST_TOKEN not in repr(info.value.args)
    assert "api-REDACTED" in str(info.value)


def test_multiline_validation_error_is_folded_to_one_line():
    rec = recording("error--maniphest.edit-invalid-column-phid")["response"]
    client, _ = client_with(HTTPAnswer(200, json.dumps(rec)))
    with pytest.raises(ConduitAPIError) as info:
        client.call("maniphest.edit", objectIdentifier="T1", transactions=[])
    assert "\n" not in str(info.value) and "Validation errors" in str(info.value)


@pytest.mark.parametrize("body", ["<html>502 Bad Gateway</html>", "", "[1, 2]", '{"no": "result"}'])
def test_garbage_body_is_a_protocol_error_after_retries(body):
    client, transport = client_with(*[HTTPAnswer(200, body)] * 3, retries=2)
    with pytest.raises(ConduitProtocolError, match="user.whoami"):
        client.call("user.whoami")
    assert len(transport.sent) == 3


def test_garbage_body_then_good_answer_is_retried_for_reads_only():
    client, _ = client_with(HTTPAnswer(200, "<html>oops</html>"), ok({"userName": "x"}))
    assert client.call("user.whoami") == {"userName": "x"}
    client, transport = client_with(HTTPAnswer(200, "<html>oops</html>"), ok({}))
    with pytest.raises(ConduitWriteUncertain):
        client.call("maniphest.edit", objectIdentifier="T1", transactions=[])
    assert len(transport.sent) == 1


# -- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [
    TransportFailure("no answer within 30 s", sent=True),
    TransportFailure("connection refused", sent=False),
    HTTPAnswer(429, "Rate limit exceeded"),
    HTTPAnswer(502, "Bad Gateway"),
    HTTPAnswer(503, "busy"),
])
def test_reads_are_retried_with_backoff(failure):
    client, transport = client_with(failure, failure, ok({"phid": "x"}))
    assert client.call("user.whoami") == {"phid": "x"}
    assert len(transport.sent) == 3
    assert len(client.sleeps) == 2 and all(s >= 0 for s in client.sleeps)


def test_backoff_grows_exponentially_up_to_the_cap():
    failures = [HTTPAnswer(503, "")] * 6
    client, _ = client_with(*failures, ok(1), retries=6)
    client._rng.uniform = lambda lo, hi: hi  # the upper bound of the jitter window
    client.backoff, client.backoff_max = 1.0, 10.0
    client.call("user.whoami")
    assert client.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_reads_give_up_after_retries_with_a_clear_error():
    client, transport = client_with(*[HTTPAnswer(503, "busy")] * 3, retries=2)
    with pytest.raises(ConduitTransportError) as info:
        client.call("maniphest.search")
    assert len(transport.sent) == 3
    assert info.value.attempts == 3 and "HTTP 503" in str(info.value)


def test_client_error_status_is_not_retried():
    client, transport = client_with(HTTPAnswer(404, "not found"))
    with pytest.raises(ConduitTransportError, match="HTTP 404"):
        client.call("user.whoami")
    assert len(transport.sent) == 1


@pytest.mark.parametrize("method", ["maniphest.edit", "phriction.edit", "phriction.create"])
@pytest.mark.parametrize("failure", [TransportFailure("no answer", sent=True), HTTPAnswer(500, "oops"),
                                     HTTPAnswer(502, "")])
def test_writes_are_never_retried_when_they_may_have_applied(method, failure):
    client, transport = client_with(failure, ok({}))
    with pytest.raises(ConduitWriteUncertain):
        client.call(method, objectIdentifier="T1", transactions=[])
    assert len(transport.sent) == 1


def test_writes_refused_before_processing_are_retried():
    client, transport = client_with(HTTPAnswer(429, "slow down"), TransportFailure("refused", sent=False),
                                    ok({"object": {"id": 1}}))
    assert client.call("maniphest.edit", objectIdentifier="T1", transactions=[]) == {"object": {"id": 1}}
    assert len(transport.sent) == 3


def test_is_write():
    assert is_write("maniphest.edit") and is_write("phriction.create") and is_write("phriction.edit")
    assert not is_write("maniphest.search") and not is_write("transaction.search")
    assert not is_write("maniphest.gettasktransactions") and not is_write("conduit.query")


# -- the token ----------------------------------------------------------------------------------


def test_token_never_in_repr_or_str():
    client = ConduitClient(URL, TEST_TOKEN, transport=ScriptedTransport())
    assert TEST_TOKEN not in repr(client) and TEST_TOKEN not in str(client.__dict__)
    assert TEST_TOKEN not in repr(Secret(TEST_TOKEN)) and TEST_TOKEN not in f"{Secret(TEST_TOKEN)}"


def test_transport_errors_never_quote_the_token(caplog):
    failure = TransportFailure(f"boom with body params={TEST_TOKEN}", sent=True)
    client, _ = client_with(failure, failure, retries=1)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(ConduitTransportError) as info:
            client.call("user.whoami")
    assert TEST_TOKEN not in str(info.value)
    assert TEST_TOKEN not in caplog.text


def test_redact_scrubs_token_shapes():
    assert redact("x api-ABCDEFGHIJKLMNOPQRSTUVWXYZ12 y") == "x api-REDACTED y"
    assert redact("token=secret-thing", "secret-thing") == "token=api-REDACTED"


@responses.activate
def test_requests_exceptions_are_translated_in_one_place():
    responses.post(URL + "api/user.whoami", body=requests.exceptions.ReadTimeout("read timed out"))
    responses.post(URL + "api/maniphest.edit", body=requests.exceptions.ReadTimeout("read timed out"))
    client = ConduitClient(URL, TEST_TOKEN, retries=0)
    with pytest.raises(ConduitTransportError, match="no answer"):
        client.call("user.whoami")
    with pytest.raises(ConduitWriteUncertain):
        client.call("maniphest.edit", objectIdentifier="T1", transactions=[])


# -- capabilities -------------------------------------------------------------------------------


def test_require_names_missing_methods_and_caches_conduit_query():
    methods = recorded_result("conduit.query--full")
    trimmed = {k: v for k, v in methods.items() if k != "project.column.search"}
    client, transport = client_with(ok(trimmed))
    with pytest.raises(ConduitCapabilityError, match="project.column.search"):
        client.require()
    assert client.has_method("maniphest.search") and not client.has_method("nope.nope")
    assert len(transport.sent) == 1


def test_recorded_server_has_everything_we_need():
    client, _ = client_with(ok(recorded_result("conduit.query--full")))
    client.require()
    assert client.has_method("maniphest.gettasktransactions")
