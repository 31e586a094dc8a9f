"""Start-up (issue 12): requests stays the transport, but the charset guesser it imports eagerly
(charset_normalizer: every codec looked up) is imported only if something asks it to guess."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys, warnings
warnings.simplefilter("error")  # requests' RequestsDependencyWarning would fail the run
{before}
import clinicbot.phab.conduit
import requests
print("guesser", "charset_normalizer.api" in sys.modules)
r = requests.models.Response()
r._content = "café olé déjà vu".encode()
print(r.apparent_encoding, r.text)
print("guesser", "charset_normalizer.api" in sys.modules)
"""


def run(before: str = "") -> list[str]:
    proc = subprocess.run([sys.executable, "-c", CODE.format(before=before)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_the_charset_guesser_is_imported_only_when_an_answer_needs_a_guess():
    assert run() == ["guesser False", "utf-8 café olé déjà vu", "guesser True"]


def test_an_already_imported_guesser_is_left_as_it_is():
    assert run("import charset_normalizer") == ["guesser True", "utf-8 café olé déjà vu", "guesser True"]
