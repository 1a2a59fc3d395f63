#!/usr/bin/env bash
# The chaos run: faults under load against the whole pipeline; exits non-zero on any loss or
# duplicate.  scripts/chaos.sh [--profile short|long]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh
install_packages
cargo build --release --locked -p muttd -p mutt-bench
export MUTT_TEST_PG_BIN=${MUTT_TEST_PG_BIN:-$(pg_bindir)}
exec target/release/mutt-pipeline chaos "$@"
