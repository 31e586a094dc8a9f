"""The board overview (`clinicbot board`): per column, open tasks, the oldest one and its age.

Names and titles are task text: the data (also ``--format json``) carries them without control
characters or bidi overrides (``escape.clean``), and the table shows them as rich ``Text`` (never
console markup), one line each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from clinicbot import escape
from clinicbot.phab.boards import BoardData


def format_age(seconds: float) -> str:
    days = seconds / 86400
    if days >= 2:
        return f"{days:.0f}d"
    hours = seconds / 3600
    if hours >= 1:
        return f"{hours:.0f}h"
    return f"{max(0, seconds) / 60:.0f}m"


def board_overview(data: BoardData, now: datetime) -> dict[str, Any]:
    """Plain data: every watched board with its columns in board order."""
    boards = []
    for board in data.boards:
        columns = []
        for col in board.columns:
            tasks = [t for t in data.tasks.values() if t.is_open and t.column_on(board.phid) == col.phid]
            oldest = min(tasks, key=lambda t: (t.created, t.id), default=None)
            columns.append({
                "phid": col.phid,
                "name": escape.clean(col.name),
                "role": col.role,
                "hidden": col.hidden,
                "open_tasks": len(tasks),
                "oldest": None if oldest is None else {
                    "task": oldest.monogram,
                    "title": escape.clean(oldest.title),
                    "created": oldest.created.isoformat(),
                    "age_seconds": int((now - oldest.created).total_seconds()),
                },
            })
        boards.append({"phid": board.phid, "name": escape.clean(board.name), "columns": columns,
                       "open_tasks": sum(c["open_tasks"] for c in columns)})
    return {"now": now.isoformat(), "boards": boards}


def render_overview(overview: dict[str, Any], console: Console) -> None:
    line = escape.one_line  # clean, one line: what a terminal cell may show of task text
    for board in overview["boards"]:
        table = Table(title=Text(f"{line(board['name'])} — {board['open_tasks']} open tasks"), title_justify="left")
        table.add_column("Column")
        table.add_column("Role")
        table.add_column("Open", justify="right")
        table.add_column("Oldest open task (by creation)")
        table.add_column("Age", justify="right")
        for col in board["columns"]:
            oldest = col["oldest"]
            name = line(col["name"]) + (" (hidden)" if col["hidden"] else "")
            # Task titles are data: Text() renders them literally, never as console markup.
            table.add_row(Text(name), Text(line(col["role"]) or "—"), str(col["open_tasks"]),
                          Text(f"{line(oldest['task'])} {line(oldest['title'])}" if oldest else "—"),
                          format_age(oldest["age_seconds"]) if oldest else "—")
        console.print(table)
