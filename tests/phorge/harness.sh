#!/usr/bin/env bash
# A real Phorge on loopback for the real-server tests: start | stop | env | status.
# See tests/phorge/README.md. Usage: bash tests/phorge/harness.sh start && eval "$(bash tests/phorge/harness.sh env)"
exec python3 "$(dirname "$0")/harness.py" "$@"
