#!/usr/bin/env bash
# The real-server tests in one command: start (or reuse) the real Phorge, then run every
# @pytest.mark.phorge test against it. Needs root on Debian 12 (see tests/phorge/README.md).
# Extra arguments go to pytest, e.g. `bash tests/phorge/run-tests.sh -x -k board`.
# The server keeps running afterwards (a second run reuses it); stop it with `bash tests/phorge/harness.sh stop`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/phorge/harness.sh start
eval "$(bash tests/phorge/harness.sh env)"
export CI="${CI:-true}"   # a server we just started must not be skipped
exec python3 -m pytest -q -m phorge "$@"
