#!/usr/bin/env bash
# Runs MUTT on this machine with everything it needs: installs redis-server and PostgreSQL when
# missing, starts private instances of both (loopback, ports 6390/5440, data kept between runs),
# builds muttd and starts every role with `muttd run --migrate`. Ctrl-C stops it all.
#
#   scripts/run-local.sh                  # run MUTT
#   scripts/run-local.sh --roles ingestor # extra arguments go to `muttd run`
#
# In another terminal, `source mutt-data/env` gives you the same settings for muttd commands:
#   target/release/muttd rules import examples/rules.yaml
#   target/release/muttd send --message "LINK-DOWN on Gi0/1"
#   tail mutt-data/alerts.jsonl          # alerts land here while no webhook is configured
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${MUTT_DATA_DIR:-$root/mutt-data}
redis_port=${MUTT_LOCAL_REDIS_PORT:-6390}
pg_port=${MUTT_LOCAL_PG_PORT:-5440}
mkdir -p "$data"
log() { printf 'run-local: %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/services.sh
source "$root/scripts/lib/services.sh"
install_packages

# PostgreSQL refuses to run as root and needs a directory its user can reach.
if [ "$(id -u)" -eq 0 ]; then pgdata=/var/tmp/mutt-local-pg; else pgdata=$data/pg; fi

cleanup() {
  log "stopping redis-server and PostgreSQL"
  redis-cli -p "$redis_port" shutdown >/dev/null 2>&1 || true
  as_pg "$(pg_bindir)/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

mkdir -p "$data/redis"
if ! redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
  log "starting redis-server on 127.0.0.1:$redis_port (AOF in $data/redis)"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$data/redis" --appendonly yes \
    --appendfsync everysec --auto-aof-rewrite-min-size 1gb --save '' --daemonize yes \
    --logfile "$data/redis/redis.log"
  wait_redis "$redis_port"
fi
start_postgres "$pgdata" "$pg_port" "$data/postgres.log"

[ -s "$data/ingest_api_key" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$data/ingest_api_key"
[ -s "$data/webui_api_key" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$data/webui_api_key"
cat > "$data/env" <<ENV
export MUTT_REDIS__URL=redis://127.0.0.1:$redis_port/0
export MUTT_DATABASE__URL=postgres://mutt@127.0.0.1:$pg_port/mutt
export MUTT_DATA_DIR=$data
export INGEST_API_KEY_FILE=$data/ingest_api_key
export WEBUI_API_KEY_FILE=$data/webui_api_key
ENV
# shellcheck disable=SC1091
source "$data/env"

cargo build --release --locked -p muttd
log "ingest API key: $(cat "$data/ingest_api_key") (also in $data/ingest_api_key)"
log "settings for other muttd commands: source $data/env"
target/release/muttd run --migrate "$@"
