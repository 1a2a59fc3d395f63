#!/usr/bin/env bash
# Runs MUTT's whole test suite: starts a private Redis and PostgreSQL (installing them with
# apt-get when missing), runs every test against them, and stops them again.
#   scripts/test.sh                 # everything
#   scripts/test.sh -p mutt-queue   # extra arguments go to `cargo test`
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/test-services.sh start
trap 'scripts/test-services.sh stop' EXIT
# shellcheck disable=SC1091
source .test-services/env
# Schemathesis (PyPI) for the management API's OpenAPI test, installed once into target/.
scripts/schemathesis.sh install
cargo test --workspace --locked --no-fail-fast "$@"
