"""Every recorded answer from the real Phorge goes through the client: a result, or a clean error."""

from __future__ import annotations

import json

import pytest

from clinicbot.phab.conduit import ConduitClient, HTTPAnswer
from clinicbot.errors import ConduitAPIError
from conftest import RECORDINGS, TEST_TOKEN

FILES = sorted(p for p in RECORDINGS.glob("*.json"))


class OneAnswer:
    def __init__(self, body: str):
        self.body = body

    def post(self, url, data, timeout):
        return HTTPAnswer(200, self.body)

    def close(self):
        pass


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_client_parses_every_recording(path):
    rec = json.loads(path.read_text())
    response = rec["response"]
    client = ConduitClient("http://127.0.0.1:1/", TEST_TOKEN, transport=OneAnswer(json.dumps(response)), retries=0)
    params = rec.get("request_params") or {}
    if not isinstance(params, dict):
        params = {}
    if response.get("error_code"):
        with pytest.raises(ConduitAPIError) as info:
            client.call(rec["method"], **params)
        assert info.value.code == response["error_code"] and info.value.method == rec["method"]
        assert "\n" not in str(info.value)
    else:
        assert client.call(rec["method"], **params) == response["result"]
