"""Fixtures for the real-Phorge tests (``@pytest.mark.phorge``).

The server comes from ``CLINICBOT_PHORGE_URL`` + ``CLINICBOT_PHORGE_MANIFEST`` (what
``tests/phorge/harness.sh env`` exports). Without them the tests are skipped with the reason shown by
``-ra``; under ``CI=true`` a missing or dead server fails them instead: CI never skips silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from .realserver import PhorgeServer, ScratchBoard, connect

_CONNECTION: tuple[PhorgeServer | None, str] | None = None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _server() -> tuple[PhorgeServer | None, str]:
    global _CONNECTION
    if _CONNECTION is None:
        _CONNECTION = connect()
    return _CONNECTION


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder is a real-server test, even if its author forgot the marker."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.phorge)


@pytest.fixture(scope="session")
def phorge() -> PhorgeServer:
    """The running real Phorge (skips, or fails under CI=true, when there is none)."""
    server, reason = _server()
    if server is None:
        if in_ci():
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    return server


@pytest.fixture(scope="session")
def scratch(phorge: PhorgeServer) -> ScratchBoard:
    """This session's own workboard for tests that write (a new project each session)."""
    return phorge.scratch_board()


@pytest.fixture
def phorge_config(phorge: PhorgeServer, tmp_path: Path) -> Path:
    """clinicbot.yaml (+ rotation.yaml, 0600 token file, own state_dir) for the seeded boards."""
    return phorge.write_config(tmp_path / "clinicbot")


@pytest.fixture
def make_phorge_config(phorge: PhorgeServer, tmp_path: Path) -> Callable[..., Path]:
    """Build more configs: ``make_phorge_config("name", boards=..., on_duty=..., apply=..., extra=...)``."""
    def make(name: str = "custom", **kwargs) -> Path:
        return phorge.write_config(tmp_path / name, **kwargs)
    return make
