"""A digest that scales, posted to the real Phorge (issue 14 point 11).

A board of this module's own with four Inbox tasks; `reports.digest.max_rows: 2` and a finding list
(`untriaged`). The digest is posted as a comment on a tracking task, and the server says what it did:
the "…and 2 more" line is a live relative link to the Maniphest query of the two tasks left out, the
rows and people show inert (display names in monospace: nobody pinged, not even the on-duty), and
no task got a mention edge (the query link names ids, not tasks).
"""

from __future__ import annotations

import time

import pytest

from .realserver import PhorgeServer, inspect_rendered, run_clinicbot

pytestmark = pytest.mark.phorge


@pytest.fixture(scope="module")
def posted(phorge: PhorgeServer, tmp_path_factory):
    board = phorge.new_board("Digest scale")
    tasks = [phorge.scratch_task(f"Scale {i}", column="Inbox", priority="normal", author="mallory",
                                 age_days=10 - i, board=board) for i in range(4)]  # Scale 0 the oldest
    tracking = phorge.tracking_task("Digest scale (real-Phorge test)")
    phids = [t["phid"] for t in tasks]
    edges_before = phorge.edges(phids, ["mention", "mentioned-in"])
    config = phorge.write_config(tmp_path_factory.mktemp("digest-scale"), boards=phorge.scratch_board_config(board),
                                 extra={"reports": {"digest": {"max_rows": 2, "lists": ["untriaged"]}}})
    since = int(time.time()) - 1
    result = run_clinicbot(config, "digest", "--to", f"task:{tracking['monogram']}", "--apply", now=phorge.now)
    return {"tasks": tasks, "tracking": tracking, "phids": phids, "edges_before": edges_before, "since": since,
            "result": result}


def test_and_n_more_is_a_live_link_to_the_rest_and_names_nobody(phorge: PhorgeServer, posted):
    assert posted["result"].returncode == 0, posted["result"].stdout + posted["result"].stderr
    (text,) = phorge.comments(posted["tracking"]["monogram"], author="clinicbot", since=posted["since"])
    hidden = ",".join(str(t["id"]) for t in posted["tasks"][2:])  # the two newest are cut
    more = f"/maniphest/?ids={hidden}"
    assert f"[[ {more} | …and 2 more ]]" in text
    assert "Untriaged in the Inbox (4, oldest first)" in text
    rendered = inspect_rendered(phorge.render(text))
    shown = {f"/{t['monogram']}" for t in posted["tasks"][:2]}
    assert more in rendered.plain_links and shown <= set(rendered.plain_links)
    assert not {f"/{t['monogram']}" for t in posted["tasks"][2:]} & set(rendered.plain_links)
    # Nobody is pinged: the on-duty are named by display name inside monospace.
    assert rendered.problems(links=shown | {more}) == [] and rendered.people == []
    realname = phorge.manifest["users"]["alice"]["realname"]
    assert any(f"{realname} (@alice)" in m for m in rendered.monospace), rendered.monospace


def test_the_cut_rows_get_no_mention_edge(phorge: PhorgeServer, posted):
    assert posted["result"].returncode == 0, posted["result"].stdout + posted["result"].stderr
    assert phorge.edges([posted["tracking"]["phid"]], ["mention", "mentioned-in"]) == []
    edges = phorge.edges(posted["phids"], ["mention", "mentioned-in"])
    assert sorted(map(str, edges)) == sorted(map(str, posted["edges_before"]))
