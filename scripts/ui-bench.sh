#!/usr/bin/env bash
# The console's render benchmark: a site with 10,000 rules and 1,000,000 event-audit rows on
# the embedded backend (and on Redis + PostgreSQL when the test services are up), every page
# fetched with a session; prints median and slowest per page, fails if one takes over 200 ms.
# Not part of scripts/test.sh (it takes minutes). Extra arguments go to mutt-ui-bench
# (--rules, --audit-rows, --runs, --budget-ms, --embedded-only).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f .test-services/env ]]; then
    # shellcheck disable=SC1091
    source .test-services/env
fi
nice -n 19 cargo build --release -p mutt-bench --bin mutt-ui-bench
exec nice -n 19 target/release/mutt-ui-bench "$@"
