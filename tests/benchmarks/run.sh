#!/usr/bin/env bash
# The benchmark suite: sets up ./.venv with the dev tools and the peer tracers
# (OpenInference, OpenLLMetry: benchmark-only), then runs it. Arguments go to bench.py,
# e.g. --quick, --markdown report.md, or workload names ("chat 10k").
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/venv.sh dev,bench
python tests/benchmarks/bench.py "$@"
