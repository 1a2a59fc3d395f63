#!/usr/bin/env bash
# The end-to-end benchmark of `muttd run` on the embedded backend (one process, one SQLite
# file; no Redis or PostgreSQL needed). See docs/benchmarks.md.
#   scripts/bench-embedded.sh                         # 30 s per phase, durability full
#   scripts/bench-embedded.sh --seconds 60 --durability normal --json
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked -p mutt-bench
if [[ " $* " == *" --muttd "* ]]; then
  exec target/release/mutt-pipeline embedded "$@"
fi
# It measures what ships: muttd built with the dist profile (Cargo.toml), unless told otherwise.
cargo build --profile dist --locked -p muttd
exec target/release/mutt-pipeline embedded "$@" --muttd target/dist/muttd
