#!/usr/bin/env bash
# The chaos run: faults under load; exits non-zero on any loss, or on a duplicate other than
# the alerts a killed forwarder had posted without writing their delivered ids (at least once).
#   scripts/chaos.sh [--profile short|long]
exec "$(dirname "$0")/pipeline.sh" chaos "$@"
