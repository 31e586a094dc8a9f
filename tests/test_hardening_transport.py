"""Issue 11 points 1, 2, 4, 5: redirects, redaction of transformed echoes, the answer size cap and
the total deadline per attempt, against a real socket (tests/hostile_server.py on 127.0.0.1)."""

from __future__ import annotations

import io
import json
import logging
import secrets
import string
import time
import urllib.parse

import pytest

from clinicbot.phab.conduit import ConduitClient, HTTPAnswer
from clinicbot.errors import (
    ConduitAnswerTooLarge,
    ConduitAPIError,
    ConduitError,
    ConduitRedirectError,
    ConduitTransportError,
    ConduitWriteUncertain,
    redact,
)
from clinicbot.cli.logs import setup_logging
from hostile_server import Envelope, HostileServer, Huge, Raw, Redirect, Trickle


def fresh_token() -> str:
    """A token generated per test run: never a literal in the repository."""
    return "api-" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(28))


@pytest.fixture
def hostile():
    with HostileServer(upstream="http://127.0.0.1:9/") as hs:
        yield hs


def client(url: str, token: str, **kw) -> ConduitClient:
    kw.setdefault("retries", 0)
    return ConduitClient(url, token, sleep=lambda s: None, **kw)


# -- 1. redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("method", ["maniphest.search", "maniphest.edit"])
def test_a_redirect_is_never_followed_and_names_where_it_pointed(hostile, status, method):
    token = fresh_token()
    hostile.behave(method, Redirect(status, hostile.target_url + "api/" + method))
    with pytest.raises(ConduitRedirectError) as info:
        client(hostile.url, token).call(method)
    message = str(info.value)
    assert hostile.log.redirected_hits == 0  # the token never went to the other host
    assert f"HTTP {status}" in message and hostile.target_url in message and "phabricator.url" in message
    assert "https://" in message and token not in message.lower() and "\n" not in message
    assert info.value.exit_code == 3


def test_a_redirect_is_not_retried(hostile):
    hostile.behave("user.whoami", Redirect(307, "https://elsewhere.example/api/user.whoami"))
    c = client(hostile.url, fresh_token(), retries=3)
    with pytest.raises(ConduitRedirectError):
        c.call("user.whoami")
    assert hostile.log.methods == ["user.whoami"]


def test_a_redirect_location_holding_a_token_is_redacted(hostile):
    token = fresh_token()
    hostile.behave("user.whoami", Redirect(302, f"https://x.example/?t={token.upper()}"))
    with pytest.raises(ConduitRedirectError) as info:
        client(hostile.url, token).call("user.whoami")
    assert token not in str(info.value).lower() and "api-REDACTED" in str(info.value)


# -- 2. redaction --------------------------------------------------------------------------------


def echoes(token: str) -> dict[str, str]:
    return {
        "as is": token,
        "upper case": token.upper(),
        "json escaped": json.dumps(json.dumps({"t": token}))[1:-1],
        "url encoded": urllib.parse.quote(token, safe=""),
        "every char url encoded": "".join(f"%{ord(c):02X}" for c in token),
        "dash escaped": token.replace("-", "\\u002d"),
        "html entity dash": token.replace("-", "&#45;"),
        "without the prefix": token[4:].upper(),
        "cut off": token[:16],
    }


@pytest.mark.parametrize("form", list(echoes("api-x")))
def test_redact_removes_transformed_echoes(form):
    token = fresh_token()
    text = f'API token "{echoes(token)[form]}" is not valid.'
    # passed explicitly, and registered process-wide (as ConduitClient's Secret does)
    assert token[4:14] not in redact(text, token).lower()
    ConduitClient("http://127.0.0.1:9/", token)
    assert token[4:14] not in redact(text).lower()


def test_redact_leaves_ordinary_text_alone():
    text = "PHID-TASK-abcdefghijklmnopqrst moved to Ready by carol (T123, api/maniphest.search, 2026-11-22)"
    assert redact(text, fresh_token()) == text


@pytest.mark.parametrize("form", list(echoes("api-x")))
def test_a_server_error_echoing_the_token_is_redacted_at_creation(hostile, form):
    token = fresh_token()
    hostile.behave("user.whoami", Envelope(lambda params: {
        "result": None, "error_code": "ERR-INVALID-AUTH",
        "error_info": f'API token "{echoes(token)[form]}" is not valid.'}))
    with pytest.raises(ConduitAPIError) as info:
        client(hostile.url, token).call("user.whoami")
    for text in (str(info.value), info.value.info, repr(info.value.args)):
        assert token[4:14] not in text.lower()


def test_an_http_error_page_echoing_the_token_upper_case_is_redacted(hostile):
    token = fresh_token()
    hostile.behave("maniphest.search", Raw(502, f"<html>bad gateway for {token.upper()}</html>".encode()))
    with pytest.raises(ConduitTransportError) as info:
        client(hostile.url, token).call("maniphest.search")
    assert "HTTP 502" in str(info.value) and token[4:14] not in str(info.value).lower()


def test_an_error_message_made_anywhere_is_redacted():
    token = fresh_token()
    ConduitClient("http://127.0.0.1:9/", token)  # registers the secret
    exc = ConduitError("maniphest.edit", f"server said {token.upper()} and {urllib.parse.quote(token)}")
    assert token[4:14] not in str(exc).lower()


def test_the_log_handler_redacts_the_configured_token_in_any_case():
    token = fresh_token()
    ConduitClient("http://127.0.0.1:9/", token)
    stream = io.StringIO()
    setup_logging("warning", stream=stream)
    try:
        logging.getLogger("clinicbot.test").warning("echo %s / %s", token.upper(), token[4:].upper())
    finally:
        setup_logging("warning")
    assert token[4:14] not in stream.getvalue().lower() and "api-REDACTED" in stream.getvalue()


# -- 4. the answer size cap ----------------------------------------------------------------------


@pytest.mark.parametrize("declare", [False, True])
def test_an_answer_past_the_cap_is_refused_and_not_retried(hostile, declare):
    hostile.behave("maniphest.search", Huge(size=4 * 2**20, declare_length=declare))
    c = client(hostile.url, fresh_token(), retries=3, max_answer_bytes=2**20)
    with pytest.raises(ConduitAnswerTooLarge) as info:
        c.call("maniphest.search")
    assert "max_answer_mb" in str(info.value) and c.stats.attempts["maniphest.search"] == 1


def test_an_answer_under_the_cap_is_read(hostile):
    hostile.behave("maniphest.search", Raw(200, json.dumps({"result": {"data": [], "pad": "x" * 5000},
                                                              "error_code": None}).encode(), "application/json"))
    assert client(hostile.url, fresh_token(), max_answer_bytes=6000).call("maniphest.search")["data"] == []


def test_a_write_whose_answer_passes_the_cap_is_uncertain(hostile):
    hostile.behave("maniphest.edit", Huge(size=2 * 2**20))
    with pytest.raises(ConduitWriteUncertain):
        client(hostile.url, fresh_token(), max_answer_bytes=2**20).call("maniphest.edit")


# -- 5. the total deadline -----------------------------------------------------------------------


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_a_trickling_answer_hits_the_total_deadline(hostile, in_headers):
    # 400 bytes at one per 0.05 s = 20 s; each byte comes well within the socket read timeout.
    hostile.behave("maniphest.search", Trickle(interval=0.05, in_headers=in_headers))
    c = client(hostile.url, fresh_token(), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ConduitTransportError) as info:
        c.call("maniphest.search")
    assert time.monotonic() - started < 6.0  # the deadline, with room for a loaded machine
    assert "in total" in str(info.value)


def test_the_deadline_is_per_attempt_and_retries_are_bounded(hostile):
    hostile.behave("maniphest.search", Trickle(interval=0.05))
    c = client(hostile.url, fresh_token(), timeout=0.5, retries=2)
    started = time.monotonic()
    with pytest.raises(ConduitTransportError) as info:
        c.call("maniphest.search")
    assert info.value.attempts == 3 and c.stats.attempts["maniphest.search"] == 3
    assert time.monotonic() - started < 3 * 0.5 + 4.0


def test_a_trickled_write_is_uncertain_not_retried(hostile):
    hostile.behave("maniphest.edit", Trickle(interval=0.05))
    c = client(hostile.url, fresh_token(), timeout=0.5, retries=3)
    with pytest.raises(ConduitWriteUncertain):
        c.call("maniphest.edit")
    assert c.stats.attempts["maniphest.edit"] == 1


# -- scripted transports still work (HTTPAnswer without a Location) ------------------------------


def test_a_scripted_3xx_without_location():
    class Three:
        def post(self, url, data, timeout):
            return HTTPAnswer(301, "")

        def close(self):
            pass

    with pytest.raises(ConduitRedirectError) as info:
        ConduitClient("http://127.0.0.1:9/", fresh_token(), transport=Three()).call("user.whoami")
    assert "no Location" in str(info.value)
