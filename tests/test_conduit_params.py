"""Parameter strictness: Phorge refuses any parameter a method does not define.

clinicbot calls ``maniphest.status.search`` and ``maniphest.priority.search`` with no parameters
(they define none, and answer ``{"data": [...]}`` with no cursor); the sandbox refuses undefined
parameters exactly as the recordings show; and the error says whose bug it is.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import responses
from click.testing import CliRunner
from rich.console import Console

from clinicbot.jobs.context import App
from clinicbot.phab.boards import fetch_priorities, fetch_statuses
from clinicbot.cli import cli
from clinicbot.phab.conduit import ConduitClient
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.errors import EXIT_CONDUIT, ConduitAPIError
from clinicbot.sandbox import Sandbox, generate_scenario
from clinicbot.sandbox import methods as sandbox_methods
from clinicbot.sandbox import params as sandbox_params
from conduit_matchers import decoded_params
from conftest import SECOND_RECORDINGS, TEST_TOKEN, recorded_result, recording
from test_recordings_client import OneAnswer

URL = "https://phab.example.org/"
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
NO_PARAMS = {"maniphest.status.search": "maniphest.status.search--no-params",
             "maniphest.priority.search": "maniphest.priority.search--no-params"}
# The recordings of the second set that show parameter strictness (error_code ERR-CONDUIT-CALL).
STRICTNESS = sorted(p.stem for p in SECOND_RECORDINGS.glob("error--*.json")
                    if p.stem.endswith(("-undefined-param-bogus", "-limit-param", "-limit-and-after",
                                        "-limit-form-encoding", "-order-param", "-attachments-param")))


def phorge_answer(method: str, params: dict) -> str:
    """What Phorge answers a call of a no-parameter method: the recorded data, or the refusal."""
    if params:
        names = "'" + "', '".join(params) + "'"
        return json.dumps({"result": None, "error_code": "ERR-CONDUIT-CALL",
                           "error_info": f'API Method "{method}" does not define these parameters: {names}.'})
    return json.dumps(recording(NO_PARAMS[method])["response"])


def test_the_phorge_emulation_matches_the_recordings():
    for method, name in (("maniphest.status.search", "error--maniphest.status.search-limit-and-after"),
                         ("maniphest.priority.search", "error--maniphest.priority.search-limit-param")):
        rec = recording(name)
        assert json.loads(phorge_answer(method, rec["request_params"])) == rec["response"]


# -- clinicbot's calls ----------------------------------------------------------------------------


@responses.activate
@pytest.mark.parametrize("method, fetch", [("maniphest.status.search", fetch_statuses),
                                           ("maniphest.priority.search", fetch_priorities)])
def test_statuses_and_priorities_are_fetched_with_no_parameters(method, fetch):
    def callback(request):
        params = decoded_params(request)
        params.pop("__conduit__")
        return 200, {}, phorge_answer(method, params)

    responses.add_callback(responses.POST, URL + f"api/{method}", callback=callback)
    items = fetch(ConduitClient(URL, TEST_TOKEN, retries=0))
    assert [i.value for i in items] == [d["value"] for d in recorded_result(NO_PARAMS[method])["data"]]
    assert len(responses.calls) == 1  # no cursor, nothing to page
    assert decoded_params(responses.calls[0].request) == {"__conduit__": {"token": TEST_TOKEN}}


def test_an_unpaged_search_refuses_paging_arguments():
    client = ConduitClient(URL, TEST_TOKEN, transport=None, retries=0)
    with pytest.raises(TypeError, match="takes no parameters"):
        next(client.search_pages("maniphest.status.search", limit=100))


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(scenario=generate_scenario(NOW, size=30), clock=lambda: NOW.timestamp())
    sb.start()
    yield sb
    sb.stop()


def test_statuses_and_priorities_against_the_strict_sandbox(sandbox):
    client = ConduitClient(sandbox.url, sandbox.token, retries=0)
    before = dict(sandbox.stats.requests)
    statuses, priorities = fetch_statuses(client), fetch_priorities(client)
    assert {s.value for s in statuses} >= {"open", "resolved"} and {p.value for p in priorities} >= {100, 90, 0}
    for method in NO_PARAMS:
        assert sandbox.stats.requests[method] - before.get(method, 0) == 1


# -- the sandbox refuses undefined parameters, as Phorge does --------------------------------------


def fields_of(rec: dict, token: str) -> list[tuple[str, str]]:
    return [(k, v.replace("api-REDACTED", token)) for k, v in rec["request_form_fields"]]


def test_the_strictness_recordings_are_all_here():
    assert len(STRICTNESS) >= 25 and len(SANDBOX_STRICTNESS) >= len(STRICTNESS) - 1
    assert "error--maniphest.status.search-limit-form-encoding" in STRICTNESS


# The sandbox has no remarkup.process (it cannot render Remarkup); its recording is left to the real server.
SANDBOX_STRICTNESS = [n for n in STRICTNESS if recording(n)["method"] in sandbox_methods.METHODS]


@pytest.mark.parametrize("name", SANDBOX_STRICTNESS)
def test_sandbox_refuses_as_recorded(sandbox, name):
    rec = recording(name)
    body = json.loads(sandbox.answer(rec["method"], fields_of(rec, sandbox.token)))
    assert body == rec["response"]


@pytest.mark.parametrize("method", ["maniphest.status.search", "maniphest.priority.search"])
def test_sandbox_answers_the_valid_call_like_the_recording(sandbox, method):
    rec = recording(NO_PARAMS[method])
    body = json.loads(sandbox.answer(method, fields_of(rec, sandbox.token)))
    assert body["error_code"] is None and list(body["result"]) == ["data"]  # no cursor, no maps
    want = {frozenset(d) for d in rec["response"]["result"]["data"]}
    assert {frozenset(d) for d in body["result"]["data"]} <= want


def test_undefined_parameters_are_refused_before_authentication(sandbox):
    body = json.loads(sandbox.answer("user.whoami", [("params", json.dumps({"limit": 1, "after": "2"}))]))
    assert (body["error_code"], body["error_info"]) == (
        "ERR-CONDUIT-CALL", "API Method \"user.whoami\" does not define these parameters: 'limit', 'after'.")


def test_names_are_listed_in_the_order_sent(sandbox):
    params = {"zeta": 1, "constraints": {}, "alpha": 2, "__conduit__": {"token": sandbox.token}}
    body = json.loads(sandbox.answer("maniphest.search", [("params", json.dumps(params))]))
    assert body["error_info"] == "API Method \"maniphest.search\" does not define these parameters: 'zeta', 'alpha'."


@pytest.mark.parametrize("field", ["limit", "host", "bogus[0]", "token"])
def test_form_encoded_fields_are_parameters(sandbox, field):
    body = json.loads(sandbox.answer("maniphest.status.search", [("api.token", sandbox.token), (field, "1")]))
    name = field.split("[")[0]
    assert body["error_info"] == f"API Method \"maniphest.status.search\" does not define these parameters: '{name}'."


@pytest.mark.parametrize("field", ["output", "__conduit__", "__path__", "api.anything", "access_token", "scope",
                                   "code", "params"])
def test_form_encoded_metadata_fields_are_not_parameters(sandbox, field):
    value = "json" if field == "output" else ""
    body = json.loads(sandbox.answer("maniphest.status.search", [("api.token", sandbox.token), (field, value)]))
    assert body["error_code"] is None and body["result"]["data"]


def test_json_encoding_ignores_other_form_fields_including_a_form_token(sandbox):
    # Phorge reads only the JSON's __conduit__ for the token when "params" is set, and no other field.
    body = json.loads(sandbox.answer("maniphest.status.search", [
        ("params", json.dumps({"__conduit__": {"token": sandbox.token}})), ("limit", "5"), ("host", "x")]))
    assert body["error_code"] is None
    body = json.loads(sandbox.answer("user.whoami", [("params", "{}"), ("api.token", sandbox.token)]))
    assert body["error_code"] == "ERR-INVALID-SESSION"


def test_console_encoding_decodes_each_value_as_json(sandbox):
    token = json.dumps({"token": sandbox.token})
    body = json.loads(sandbox.answer("maniphest.status.search", [("params[__conduit__]", token),
                                                                 ("params[limit]", "100")]))
    assert body["error_info"] == "API Method \"maniphest.status.search\" does not define these parameters: 'limit'."
    body = json.loads(sandbox.answer("user.whoami", [("params[__conduit__]", token)]))
    assert body["result"]["userName"] == "clinicbot"


def test_sandbox_parameter_lists_are_the_recorded_ones():
    recorded = recorded_result("conduit.query--full")
    docs = sandbox_params.method_docs()
    for method in sandbox_methods.METHODS:
        assert method in docs, f"{method}: copy its entry from the recorded conduit.query into conduit_methods.json"
        assert docs[method] == recorded[method], method
    assert sandbox_params.declared("maniphest.status.search") == []
    assert sandbox_params.declared("maniphest.gettasktransactions") == ["ids"]


# -- the error message ----------------------------------------------------------------------------




def error_from(name: str) -> ConduitAPIError:
    rec = recording(name)
    client = ConduitClient(URL, TEST_TOKEN, transport=OneAnswer(json.dumps(rec["response"])), retries=0)
    with pytest.raises(ConduitAPIError) as info:
        client.call(rec["method"], **rec["request_params"])
    return info.value


def test_undefined_parameters_are_our_bug_and_named():
    err = error_from("error--maniphest.status.search-limit-and-after")
    msg = str(err)
    assert "\n" not in msg and err.exit_code == EXIT_CONDUIT
    assert msg.startswith("Conduit maniphest.status.search failed with ERR-CONDUIT-CALL")
    assert err.undefined_params == ("limit", "after") and not err.unknown_method
    assert "clinicbot bug" in msg and "'limit', 'after'" in msg and "report" in msg and "upgrade clinicbot" in msg
    assert "does not have this method" not in msg and "upgrade Phabricator" not in msg


def test_unknown_method_says_the_server_lacks_it():
    err = error_from("error--unknown-method")
    msg = str(err)
    assert "\n" not in msg and err.unknown_method and err.undefined_params == ()
    assert msg.startswith("Conduit maniphest.frobnicate failed with ERR-CONDUIT-CALL")
    assert "does not have this method" in msg and "upgrade Phabricator/Phorge" in msg
    assert "clinicbot bug" not in msg


def test_cli_reports_the_refusal_in_one_line_with_exit_3(sandbox, tmp_path, monkeypatch):
    refusal = recording("error--maniphest.status.search-limit-param")["response"]
    answer = sandbox.answer

    def refusing(method, fields):
        if method == "maniphest.status.search":
            return json.dumps(refusal).encode()
        return answer(method, fields)

    monkeypatch.setattr(sandbox, "answer", refusing)
    config = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    result = CliRunner().invoke(cli, ["--config", str(config), "--now", NOW.isoformat(), "board"],
                                obj=App(env={}, console=Console(width=300)))
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == EXIT_CONDUIT and len(lines) == 1, result.output
    assert "maniphest.status.search" in lines[0] and "ERR-CONDUIT-CALL" in lines[0] and "'limit'" in lines[0]
    assert "clinicbot bug" in lines[0] and sandbox.token not in result.output


def test_form_fields_decoding_matches_phorge_order(sandbox):
    # PHP keeps the first position of a repeated top-level name (constraints[...] twice).
    fields = [("api.token", sandbox.token), ("b", "1"), ("constraints[statuses][0]", "open"), ("a", "2"),
              ("constraints[ids][0]", "1")]
    body = json.loads(sandbox.answer("maniphest.search", fields))
    assert body["error_info"] == "API Method \"maniphest.search\" does not define these parameters: 'b', 'a'."
