"""The main job: what `clinicbot demo` runs and what a cron line would run by default.

Today: the board overview. When the daily digest exists it shows the digest instead.
"""

from __future__ import annotations

from clinicbot.app import App
from clinicbot.errors import EXIT_OK


def run(app: App) -> int:
    from clinicbot.boards import load_boards
    from clinicbot.overview import board_overview, render_overview

    data = load_boards(app.client(), app.config())
    render_overview(board_overview(data, app.now()), app.console)
    return EXIT_OK
