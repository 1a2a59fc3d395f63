#!/usr/bin/env bash
# The soak run (not in CI): the pipeline as separate muttd processes (ingestor, alerter,
# forwarder) on a private Redis (AOF) and PostgreSQL on free loopback ports, a counting webhook
# sink, steady load, and one fault a minute in rotation: kill -9 the alerter, restart Redis,
# stop PostgreSQL for 15 s, webhook answering 500 for 20 s, kill -9 the forwarder. Prints each
# role's RSS and Redis's key count and memory before and after, and the counts (accepted,
# audited, delivered, DLQ, lost); exits non-zero if anything was lost, or duplicated other than
# at a forwarder's kill -9 (at least once: alerts posted before their delivered ids were written).
#
#   scripts/soak.sh                       # 30 minutes at 2,000 events/s
#   scripts/soak.sh --minutes 2 --rate 500 --batch 10 [--json]
#
# Builds the release binaries first (scripts/pipeline.sh); run it under `nice -n 19` on a
# shared machine.
exec "$(dirname "$0")/pipeline.sh" soak "$@"
