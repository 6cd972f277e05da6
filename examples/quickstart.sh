#!/usr/bin/env bash
# The main job: trace the quickstart chain end to end (sets up ./.venv on first run).
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/venv.sh examples
exec python examples/quickstart.py "$@"
