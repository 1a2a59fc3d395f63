#!/usr/bin/env bash
# Starts or stops a private redis-server and PostgreSQL for MUTT's tests, on loopback ports of
# their own and with data in temporary directories. Installs the Debian packages when missing.
#
#   scripts/test-services.sh start   # start both; writes .test-services/env
#   scripts/test-services.sh stop    # stop both, remove their data
#   source .test-services/env        # exports MUTT_TEST_REDIS_URL and MUTT_TEST_DATABASE_URL
#
# Ports: MUTT_TEST_REDIS_PORT (default 16379), MUTT_TEST_PG_PORT (default 15432).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.test-services"
redis_port=${MUTT_TEST_REDIS_PORT:-16379}
pg_port=${MUTT_TEST_PG_PORT:-15432}

log() { printf 'test-services: %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/services.sh
source "$root/scripts/lib/services.sh"

start() {
  install_packages
  mkdir -p "$state"
  stop_quiet

  log "starting redis-server on 127.0.0.1:$redis_port"
  local rdir; rdir=$(mktemp -d /tmp/mutt-test-redis.XXXXXX)
  echo "$rdir" > "$state/redis.dir"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$rdir" --save '' --appendonly no \
    --daemonize yes --pidfile "$rdir/redis.pid" --logfile "$rdir/redis.log"
  for _ in $(seq 1 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -p "$redis_port" ping >/dev/null

  local bin; bin=$(pg_bindir)
  log "starting PostgreSQL ($bin) on 127.0.0.1:$pg_port"
  local pdir; pdir=$(mktemp -d /tmp/mutt-test-pg.XXXXXX)
  echo "$pdir" > "$state/pg.dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pdir"
  as_pg "$bin/initdb" -D "$pdir/data" --auth=trust -U mutt -E UTF8 >/dev/null
  as_pg "$bin/pg_ctl" -D "$pdir/data" -l "$pdir/pg.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pdir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null
  echo "$bin" > "$state/pg.bin"

  cat > "$state/env" <<ENV
export MUTT_TEST_REDIS_URL=redis://127.0.0.1:$redis_port/
export MUTT_TEST_DATABASE_URL=postgres://mutt@127.0.0.1:$pg_port/postgres
export MUTT_TEST_PG_BIN=$bin
export MUTT_TEST_PG_DATA=$pdir/data
ENV
  log "ready; source $state/env"
}

stop_quiet() {
  if [ -f "$state/redis.dir" ]; then
    local rdir; rdir=$(cat "$state/redis.dir")
    if [ -f "$rdir/redis.pid" ]; then
      local rpid; rpid=$(cat "$rdir/redis.pid")
      kill "$rpid" 2>/dev/null || true
      # redis-server still writes its log while it shuts down: removing the directory under it
      # failed ("Directory not empty") and, with set -e, left PostgreSQL running.
      for _ in $(seq 50); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$rdir" "$state/redis.dir" || true
  fi
  if [ -f "$state/pg.dir" ]; then
    local pdir bin; pdir=$(cat "$state/pg.dir"); bin=$(cat "$state/pg.bin" 2>/dev/null || pg_bindir)
    if [ -d "$pdir/data" ]; then as_pg "$bin/pg_ctl" -D "$pdir/data" -m immediate -w stop >/dev/null 2>&1 || true; fi
    rm -rf "$pdir" "$state/pg.dir" || true
  fi
  rm -f "$state/env"
}

case "${1:-}" in
  start) start ;;
  stop) stop_quiet; log "stopped" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
