#!/usr/bin/env bash
# Builds release binaries and runs `mutt-pipeline` (the whole pipeline as separate processes
# against a private Redis and PostgreSQL, installed with apt-get when missing).
#   scripts/pipeline.sh bench|chaos [options]     (scripts/bench.sh and scripts/chaos.sh call this)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh
install_packages
export MUTT_TEST_PG_BIN=${MUTT_TEST_PG_BIN:-$(pg_bindir)}
if [ "${1:-}" = bench ] && [[ " $* " != *" --muttd "* ]]; then
  # A benchmark measures what ships: muttd built with the dist profile (Cargo.toml).
  cargo build --profile dist --locked -p muttd
  cargo build --release --locked -p mutt-bench
  exec target/release/mutt-pipeline "$@" --muttd target/dist/muttd
fi
cargo build --release --locked -p muttd -p mutt-bench
exec target/release/mutt-pipeline "$@"
