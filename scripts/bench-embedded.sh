#!/usr/bin/env bash
# The end-to-end benchmark of `muttd run` on the embedded backend (one process, one SQLite
# file; no Redis or PostgreSQL needed). See docs/benchmarks.md.
#   scripts/bench-embedded.sh                         # 30 s per phase, durability full
#   scripts/bench-embedded.sh --seconds 60 --durability normal --json
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked -p muttd -p mutt-bench
exec target/release/mutt-pipeline embedded "$@"
