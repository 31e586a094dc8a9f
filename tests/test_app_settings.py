"""Settings reach the objects that use them (App wires the config into the client)."""

from __future__ import annotations

import yaml

from clinicbot.jobs.context import App
from clinicbot.jobs.demo import write_sandbox_config


def _app(tmp_path, **phabricator):
    path = write_sandbox_config(tmp_path / "clinicbot.yaml", "http://127.0.0.1:9/", "api-" + "x" * 28)
    raw = yaml.safe_load(path.read_text())
    raw["phabricator"].update(phabricator)
    path.write_text(yaml.safe_dump(raw))
    return App(config_path=path, env={})


def test_max_answer_mb_reaches_the_transport(tmp_path):
    client = _app(tmp_path, max_answer_mb=1.5).client()
    assert client.transport.max_answer_bytes == int(1.5 * 2**20)


def test_the_default_answer_cap_is_64_mb(tmp_path):
    assert _app(tmp_path).client().transport.max_answer_bytes == 64 * 2**20
