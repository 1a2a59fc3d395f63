#!/usr/bin/env bash
# The end-to-end benchmark: builds release binaries, then runs the whole pipeline as separate
# processes (private redis-server and PostgreSQL, installed with apt-get when missing).
#   scripts/bench.sh                       # 60 s per phase, one process per role
#   scripts/bench.sh --seconds 20 --alerters 2 --json
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh
install_packages
cargo build --release --locked -p muttd -p mutt-bench
export MUTT_TEST_PG_BIN=${MUTT_TEST_PG_BIN:-$(pg_bindir)}
exec target/release/mutt-pipeline bench "$@"
