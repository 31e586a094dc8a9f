"""`digest`, `agenda` and `metrics --to task:T… --apply` against the real Phorge (issue 9 points 2–4).

The reports list the tasks of a board of this module's own, whose titles, comments and board name are
hostile; they are posted as comments on a tracking task that is on no board. The server then says what
the posting did: the comment rendered by `remarkup.process` (no live mention, link, bold, embed or
object link from task text, no stray `%%%`), the mention edges (`edge.search`: none from the tracking
task, none on the listed tasks) and the listed tasks' `dateModified` (not bumped).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from .realserver import PhorgeServer, inspect_rendered, run_clinicbot

pytestmark = pytest.mark.phorge

# {ref} is a decoy task on no board: a live reference would link it (and add an edge to it), never
# to a seeded task, whose dates the other tests rely on.
BOARD_NAME = "Reports @erin **bold** {F1} {ref} %%%x%%% [[ http://evil.example | click ]] `q"
INERT = ("bold", "italic", "click", "now")  # words only task text holds: never bold/italic in a report
COMMENT = "@dave look at {F1} and {{ref}} and {ref} **now** %%%x%%% [[ http://evil.example | click ]] `tick"
# (title, column, priority, age in days, events) -> which report lists it.
TASKS: dict[str, tuple[str, str, str, float, list[tuple]]] = {
    "unbreak": ("Ping @carol and @dave: **bold** //italic// [[ http://evil.example | click ]] {F1} {{ref}} {ref} "
                "%%%literal%%% `tick \x1b[2J \x07 \u202eRTL\u202c end", "Inbox", "unbreak", 2.0, []),
    "meeting": ("Meeting: @erin **bold** {{ref}} {ref} [[ http://evil.example | click ]] %%%lit%%% `x",
                "Triage Meeting Inbox", "normal", 3.0, [(1.0, "carol", "comment", COMMENT)]),
    "review": ("Review: @carol {F1} {ref} **bold**", "Waiting for Review", "normal", 8.0, []),
}
LISTED_BY = {"digest": ["unbreak", "review"], "agenda": ["meeting"], "metrics": ["unbreak"]}
HOSTILE_SNIPPETS = ("{F1}", "{ref}", "**bold**", "[[ http://evil.example | click ]]")


@pytest.fixture(scope="module")
def posted(phorge: PhorgeServer, tmp_path_factory) -> dict[str, Any]:
    """The board, its tasks, a tracking task, and the three reports posted to it (once per module)."""
    decoy = phorge.tracking_task("Decoy that hostile task text names")
    ref = lambda text: text.replace("{ref}", decoy["monogram"])  # noqa: E731
    board = phorge.new_board(ref(BOARD_NAME))
    tasks = {key: phorge.scratch_task(ref(title), column=column, priority=priority, author="mallory", age_days=age,
                                      events=[(d, a, k, ref(v)) for d, a, k, v in events], board=board)
             for key, (title, column, priority, age, events) in TASKS.items()}
    tracking = phorge.tracking_task("Clinic reports (real-Phorge test)")
    phids = [t["phid"] for t in tasks.values()]
    before = {p: row["fields"]["dateModified"] for p, row in phorge.search_tasks(phids).items()}
    edges_before = phorge.edges(phids, ["mention", "mentioned-in"])
    directory = tmp_path_factory.mktemp("reports")
    config = phorge.write_config(directory, boards=phorge.scratch_board_config(board))
    since = int(time.time()) - 1
    results = {}
    for command in ("digest", "agenda", "metrics"):
        extra = ["--no-record"] if command == "metrics" else []
        results[command] = run_clinicbot(config, command, "--to", f"task:{tracking['monogram']}", "--apply",
                                         *extra, now=phorge.now)
    return {"config": config, "decoy": decoy, "board": board, "tasks": tasks, "tracking": tracking, "before": before, "since": since,
            "edges_before": edges_before, "results": results, "phids": phids}


def _comment_of(phorge: PhorgeServer, posted: dict[str, Any], command: str) -> str:
    texts = phorge.comments(posted["tracking"]["monogram"], author="clinicbot", since=posted["since"])
    assert len(texts) == 3, f"expected the three reports on the tracking task, got {len(texts)}"
    return texts[("digest", "agenda", "metrics").index(command)]


@pytest.mark.parametrize("command", ["digest", "agenda", "metrics"])
def test_a_posted_report_renders_task_text_inert(phorge: PhorgeServer, posted, command):
    result = posted["results"][command]
    assert result.returncode == 0, result.stdout + result.stderr
    text = _comment_of(phorge, posted, command)
    rendered = inspect_rendered(phorge.render(text))
    links = {f"/{t['monogram']}" for t in posted["tasks"].values()}
    assert rendered.problems(people={"alice", "bob"}, links=links, inert=INERT) == [], command
    assert not {"carol", "dave", "erin"} & set(rendered.people)
    # The hostile tasks are listed (as plain links), and their text is there, as monospace.
    for key in LISTED_BY[command]:
        assert f"/{posted['tasks'][key]['monogram']}" in rendered.plain_links, (command, key)
    mono = " ".join(rendered.monospace)
    for snippet in HOSTILE_SNIPPETS:
        assert snippet.replace("{ref}", posted["decoy"]["monogram"]) in mono, (command, snippet)
    if command == "agenda":  # the last comment's excerpt is task text too
        assert f"@dave look at {{F1}} and {{{posted['decoy']['monogram']}}}" in mono


def test_posting_reports_creates_no_mention_edge_and_touches_no_listed_task(phorge: PhorgeServer, posted):
    for command, result in posted["results"].items():
        assert result.returncode == 0, (command, result.stdout + result.stderr)
    tracking = posted["tracking"]
    # The bot made three comments on the tracking task and nothing else (an edge or an implicitly
    # attached {F1} would be a transaction of another type).
    mine = phorge.bot_comment_transactions(tracking["monogram"], since=posted["since"])
    assert [x["type"] for x in mine] == ["comment"] * 3
    assert phorge.edges([tracking["phid"]], ["mention", "mentioned-in"]) == []
    # The listed tasks: no new edge (the seeded comment's own {T1}/T1 made the only ones), not modified.
    edges = phorge.edges(posted["phids"], ["mention", "mentioned-in"])
    assert sorted(map(str, edges)) == sorted(map(str, posted["edges_before"]))
    assert not [e for e in edges if e["destinationPHID"] == tracking["phid"]]
    after = {p: row["fields"]["dateModified"] for p, row in phorge.search_tasks(posted["phids"]).items()}
    assert after == posted["before"]
    # The decoy the titles name got no edge from the tracking task either (only from the seeded comment).
    assert [e["destinationPHID"] for e in phorge.edges([posted["decoy"]["phid"]], ["mentioned-in"])] \
        == [posted["tasks"]["meeting"]["phid"]]


def test_a_report_is_posted_once_per_day(phorge: PhorgeServer, posted):
    # The ledger keeps the delivery: running the digest again for the same day posts nothing more.
    for command, result in posted["results"].items():
        assert result.returncode == 0, (command, result.stdout + result.stderr)
    again = run_clinicbot(posted["config"], "digest", "--to",
                          f"task:{posted['tracking']['monogram']}", "--apply", now=phorge.now)
    assert again.returncode == 0, again.stdout + again.stderr
    texts = phorge.comments(posted["tracking"]["monogram"], author="clinicbot", since=posted["since"])
    assert len(texts) == 3
