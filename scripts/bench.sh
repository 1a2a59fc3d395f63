#!/usr/bin/env bash
# The end-to-end benchmark (see docs/benchmarks.md):
#   scripts/bench.sh                       # 60 s per phase, one process per role
#   scripts/bench.sh --seconds 20 --alerters 2 --json
exec "$(dirname "$0")/pipeline.sh" bench "$@"
