"""The column-dwell helper: a "task sits in a column of role X for N days" check is a declaration.

The acceptance test of issue 13: ``DiscussingStaleCheck`` below is declared here, in this one
module, and runs (by hand, through the registry as a custom check by dotted path, and with the
comment templates) without any other file knowing it exists.
"""

from __future__ import annotations

import pytest

from checkdata import ALICE, BOB, CAROL, OTHERBOT, SECOND, SnapshotBuilder, at, comment, days, entered, keys, moved, run_check
from clinicbot.checks import ColumnDwellCheck, builtin_checks, context_factory, load_checks_and_settings, run_checks
from clinicbot.errors import ConfigError
from clinicbot.model import iso

NOW = at("2024-05-08 12:00")


class DiscussingStaleCheck(ColumnDwellCheck, slug="discussing-stale", roles=("discussing",), threshold=14,
                           severity="warning", unanswered=True,
                           summary="{task} {title} has waited {about}{age} in {where} without an answer from the team"):
    """A task in a discussing column has waited `days` for the team's first answer."""


DISCUSSING = DiscussingStaleCheck()


def _discussing(sb, task_id, at, *events, board="Review", author=CAROL, **kw):
    return entered(sb, task_id, at, "discussing", "inbox", *events, board=board, author=author,
                   filed_before=days(2), **kw)


def test_a_declared_discussing_check_fires_after_fourteen_days_without_an_answer():
    sb = SnapshotBuilder(NOW)
    _discussing(sb, 1, NOW - days(14), title="Which {queue} to use?")
    _discussing(sb, 2, NOW - days(14) + SECOND)
    _discussing(sb, 3, NOW - days(20), comment(NOW - days(19), ALICE, "use the fast one"))
    _discussing(sb, 4, NOW - days(20), comment(NOW - days(1), CAROL, "any news?"),
                comment(NOW - days(1), OTHERBOT, "CI"))
    _discussing(sb, 5, NOW - days(30), closed=True)
    found = run_check(DISCUSSING, sb.build())
    assert sorted(keys(found)) == ["discussing-stale:T1", "discussing-stale:T4"]
    first = next(f for f in found if f.task_id == 1)
    assert first.severity == "warning"
    # task text is data: the braces in the title are not format fields
    assert first.summary == ("T1 Which {queue} to use? has waited 14 days in Review: Discussing "
                             "without an answer from the team")
    assert first.facts["column"] == "Discussing" and first.facts["threshold_days"] == 14
    assert first.facts["age_days"] == 14.0 and first.facts["approximate"] is False
    assert first.facts["other_places"] == [] and first.facts["since"] == iso(NOW - days(14))


def test_the_declared_check_reads_its_threshold_and_business_hours_from_the_config():
    sb = SnapshotBuilder(NOW)  # Wednesday noon
    _discussing(sb, 1, NOW - days(3))
    assert run_check(DISCUSSING, sb.build()) == []
    assert keys(run_check(DISCUSSING, sb.build(), days=3)) == ["discussing-stale:T1"]
    # counted in working days (9-17, Mon-Fri) three calendar days are not three working days
    assert run_check(DISCUSSING, sb.build(), days=3, business_hours=True) == []


def test_the_declared_check_runs_through_the_registry_as_a_custom_check():
    path = "test_checks_dwell:DiscussingStaleCheck"
    section = {"discussing-stale": {"path": path, "days": 7, "handlers": ["comment"]}}
    checks, settings = load_checks_and_settings(section, plugins=False)
    assert [c.slug for c in checks][-1] == "discussing-stale"
    assert settings["discussing-stale"].thresholds == {"days": 7}
    sb = SnapshotBuilder(NOW)
    _discussing(sb, 1, NOW - days(8))
    result = run_checks(checks, context_factory(sb.build(), settings), only="discussing-stale")
    assert result.ok and keys(result.findings) == ["discussing-stale:T1"]
    # its settings are validated like a built-in's
    with pytest.raises(ConfigError) as bad:
        load_checks_and_settings({"discussing-stale": {"path": path, "dayz": 7}}, plugins=False)
    assert bad.value.key == "checks.discussing-stale.dayz" and "days" in bad.value.message
    with pytest.raises(ConfigError) as bad:
        load_checks_and_settings({"discussing-stale": {"path": path, "days": "soon"}}, plugins=False)
    assert bad.value.key == "checks.discussing-stale.days"


def test_the_declared_check_gets_the_default_comment_template():
    from clinicbot.reports.templating import Templates

    sb = SnapshotBuilder(NOW)
    _discussing(sb, 1, NOW - days(15), title="Use **bold** @alice")
    finding = run_check(DISCUSSING, sb.build())[0]
    templates = Templates()
    name = templates.first_of(f"checks/{finding.slug}.remarkup.j2", "checks/_default.remarkup.j2")
    assert name == "checks/_default.remarkup.j2"
    text = templates.render(name, finding=finding, facts=finding.facts, repetition=0, escalated=False)
    assert "discussing-stale" in text and "15 days in Review: Discussing" in text
    # task text is data: the remarkup filter puts it in a literal, so it never bolds or pings
    assert f"`{finding.summary}`" in text and text.count("**bold**") == 1


def test_a_task_on_two_boards_gets_one_finding_about_the_longest_wait():
    sb = SnapshotBuilder(NOW)
    a, b = sb.column("Review", "discussing"), sb.column("Team", "discussing")
    sb.task(1, created=NOW - days(40), columns=[a, b],
            events=[moved(NOW - days(15), CAROL, a), moved(NOW - days(30), CAROL, b)])
    found = run_check(DISCUSSING, sb.build())
    assert keys(found) == ["discussing-stale:T1"]
    assert found[0].facts["board"] == "Team" and found[0].facts["other_places"] == ["Review: Discussing"]


def test_an_answer_on_one_board_leaves_the_other_placement_waiting():
    sb = SnapshotBuilder(NOW)
    a, b = sb.column("Review", "discussing"), sb.column("Team", "discussing")
    sb.task(1, created=NOW - days(40), columns=[a, b],
            events=[moved(NOW - days(30), CAROL, a), comment(NOW - days(20), BOB, "looked"),
                    moved(NOW - days(16), CAROL, b)])
    found = run_check(DISCUSSING, sb.build())
    # Bob answered after the task entered Review's column but before it entered Team's
    assert keys(found) == ["discussing-stale:T1"] and found[0].facts["board"] == "Team"


def test_without_history_an_unanswered_check_says_nothing_and_a_plain_one_still_fires():
    class DiscussingLong(ColumnDwellCheck):
        slug = "discussing-long"
        description = "A task has been in a discussing column for `days`."
        roles = ("discussing",)

    sb = SnapshotBuilder(NOW)
    col = sb.column("Review", "discussing")
    sb.task(1, created=NOW - days(40), columns=[col], history=False)
    assert run_check(DISCUSSING, sb.build()) == []
    plain = run_check(DiscussingLong(), sb.build())
    assert keys(plain) == ["discussing-long:T1"] and plain[0].severity == "info"
    assert DiscussingLong.defaults == {"days": 7} and DiscussingStaleCheck.defaults == {"days": 14}


def test_an_hours_threshold():
    class InboxQuick(ColumnDwellCheck):
        slug = "inbox-quick"
        description = "A task has waited in an inbox for `hours`."
        roles = ("inbox",)
        unit = "hours"
        threshold = 2

    sb = SnapshotBuilder(NOW)
    col = sb.column("Team", "inbox")
    sb.task(1, created=NOW - days(1), columns=[col], events=[moved(NOW - days(1) / 12, CAROL, col)])
    found = run_check(InboxQuick(), sb.build())
    assert keys(found) == ["inbox-quick:T1"] and found[0].facts["threshold_hours"] == 2
    assert found[0].summary.endswith("for 2 hours")


@pytest.mark.parametrize("attrs, attr", [
    ({"slug": ""}, "slug"),
    ({"description": " "}, "description"),
    ({"roles": ("discusing",)}, "roles"),
    ({"roles": "discussing"}, "roles"),
    ({"roles": ()}, "roles"),
    ({"unit": "weeks"}, "unit"),
    ({"threshold": -1}, "threshold"),
    ({"threshold": True}, "threshold"),
    ({"severity": "urgent"}, "severity"),
    ({"summary": "{task} waited {days}"}, "summary"),
])
def test_a_mistaken_declaration_fails_when_the_class_is_defined(attrs, attr):
    body = {"slug": "x-stale", "description": "A task sat in a column.", "roles": ("discussing",), **attrs}
    with pytest.raises(TypeError) as bad:
        type("BadCheck", (ColumnDwellCheck,), body)
    assert str(bad.value).startswith(f"column dwell check BadCheck: {attr} ")


def test_the_column_checks_of_the_builtins_are_dwell_declarations():
    dwell = {c.slug for c in builtin_checks() if isinstance(c, ColumnDwellCheck)}
    assert dwell == {"untriaged", "review-needed", "waiting-for-review", "discussing-unanswered"}


def test_a_declaration_in_the_class_statement_takes_its_docstring_as_description_and_a_fitting_summary():
    class Waiting(ColumnDwellCheck, slug="discussing-wait", roles=("discussing",), unanswered=True):
        """A task in a discussing column has waited   `days`
        for an answer."""

    class Sitting(ColumnDwellCheck, slug="discussing-sit", roles=("discussing",)):
        """A task has sat in a discussing column for `days`."""

    assert Waiting.description == "A task in a discussing column has waited `days` for an answer."
    assert Waiting.summary.endswith("without a response from the team")
    assert Sitting.summary == ColumnDwellCheck.summary and Sitting.defaults == {"days": 7}
    sb = SnapshotBuilder(NOW)
    _discussing(sb, 1, NOW - days(9))
    assert run_check(Waiting(), sb.build())[0].summary.endswith("without a response from the team")


def test_an_unknown_declaration_keyword_or_a_missing_description_fails_at_definition():
    with pytest.raises(TypeError, match="unknown declaration treshold"):
        type("Typo", (ColumnDwellCheck,), {}, slug="t", roles=("inbox",), treshold=3)
    with pytest.raises(TypeError, match="description must say"):
        class NoDoc(ColumnDwellCheck, slug="no-doc", roles=("inbox",)):
            pass
