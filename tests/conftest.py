from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
RECORDINGS = FIXTURES / "conduit"
TEST_TOKEN = "api-" + "t" * 28  # obviously fake, right shape


def recording(name: str) -> dict[str, Any]:
    return json.loads((RECORDINGS / f"{name}.json").read_text())


def recorded_result(name: str) -> Any:
    return recording(name)["response"]["result"]


@pytest.fixture
def rec():
    return recording
