# Shared by scripts/test-services.sh and scripts/run-local.sh: installing and starting the
# Debian packages' redis-server and PostgreSQL as private, loopback-only instances.

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  return 1
}

install_packages() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
  pg_bindir >/dev/null 2>&1 || missing+=(postgresql)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  # Real clients for the tests: net-snmp's trap daemon and tools, Prometheus and promtool.
  command -v snmptrapd >/dev/null 2>&1 || [ -x /usr/sbin/snmptrapd ] || missing+=(snmptrapd)
  command -v snmptrap >/dev/null 2>&1 || missing+=(snmp)
  command -v python3 >/dev/null 2>&1 || missing+=(python3) # deploy/snmptrapd/mutt-trap-handler
  # scripts/schemathesis.sh makes a virtualenv for schemathesis (PyPI) against the OpenAPI document.
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  # Syslog forwarding tests: a private rsyslogd with omfwd over TCP and TLS (gtls).
  command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
  ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || missing+=(rsyslog-gnutls)
  # The package test (crates/muttd/tests/package_deb.rs): unit checks and the syscall trace.
  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
  command -v strace >/dev/null 2>&1 || missing+=(strace)
  # The console's browser tests (crates/mutt-web/tests/ui_browser.rs): headless Chromium over WebDriver.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} (apt-get)" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # The packages' own services (snmptrapd on :162, prometheus on :9090, rsyslog) must not start: the
  # tests run private instances on loopback ports of their own.
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && added=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$added" ] || $sudo rm -f "$policy"
}

# Runs a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_redis() {
  local port=$1
  for _ in $(seq 1 200); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis-server did not start on port $port" >&2
  return 1
}

# start_postgres DATADIR PORT LOGFILE: initdb (user mutt, trust auth on loopback) when the
# directory is new, start the server, create database "mutt" if missing.
start_postgres() {
  local pgdata=$1 port=$2 logfile=$3 bin
  bin=$(pg_bindir)
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    mkdir -p "$pgdata"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pgdata"
    as_pg "$bin/initdb" -D "$pgdata" --auth=trust -U mutt -E UTF8 >/dev/null
  fi
  if ! as_pg "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    touch "$logfile" && { [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$logfile"; }
    as_pg "$bin/pg_ctl" -D "$pgdata" -l "$logfile" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $pgdata" start >/dev/null
  fi
  as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U mutt -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='mutt'" | grep -q 1 \
    || as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U mutt -d postgres -qc "CREATE DATABASE mutt" >/dev/null
}
