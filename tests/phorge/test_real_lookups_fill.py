"""The fixed lookups a cold sync fills on the real Phorge (issue 12): the boards' members come with
the boards' own project.search, the bot's account and the users met by PHID are asked for too, so
the first job after it asks for none of them (only the people who can be pinged, by user name)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from clinicbot.config import load_config
from clinicbot.state.cache import cache_path
from clinicbot.state.lookups import LOOKUPS_KEY, Lookups

from .realserver import PhorgeServer, run_clinicbot

pytestmark = pytest.mark.phorge

FIXED = ("user.whoami", "project.search", "user.search")


def test_a_cold_sync_fills_the_fixed_lookups_on_a_real_server(phorge: PhorgeServer, tmp_path):
    board = phorge.new_board("Lookups")  # its members: the seeded team
    config = phorge.write_config(tmp_path / "lookups", boards=[{"project": board.name, "columns": {"inbox": "Inbox"}}])
    cold = run_clinicbot(config, "sync", "--format", "json", now=phorge.now)
    assert cold.returncode == 0, cold.stdout + cold.stderr
    calls = json.loads(cold.stdout)["calls_by_method"]
    assert {m: calls.get(m, 0) for m in FIXED} == {"user.whoami": 1, "project.search": 1, "user.search": 1}, calls
    with sqlite3.connect(cache_path(load_config(config))) as conn:
        text = conn.execute("SELECT value FROM meta WHERE key = ?", (LOOKUPS_KEY,)).fetchone()[0]
    kept = Lookups(json.loads(text), now=0)
    team = {phorge.user_phid(u) for u in phorge.manifest["team"]}
    assert set(kept.entries["team"][1]["members"]) == team  # the project's members, from the real answer
    assert kept.entries["whoami"][1]["userName"] == "clinicbot"  # the token's owner
    assert team <= set(kept.users)
