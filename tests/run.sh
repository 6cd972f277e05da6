#!/usr/bin/env bash
# The whole test job: lint, format check, strict typing, the test suite, a benchmark smoke
# run. Sets up ./.venv with the dev tools on first run.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/venv.sh dev
echo "== ruff"; ruff check lcel_trace exporters tests examples
echo "== ruff format"; ruff format --check lcel_trace exporters tests examples
echo "== mypy --strict"; mypy
echo "== pytest"; pytest "$@"
echo "== benchmark smoke run"; python tests/benchmarks/bench.py --quick
