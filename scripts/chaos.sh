#!/usr/bin/env bash
# The chaos run: faults under load; exits non-zero on any loss or duplicate.
#   scripts/chaos.sh [--profile short|long]
exec "$(dirname "$0")/pipeline.sh" chaos "$@"
