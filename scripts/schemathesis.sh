#!/usr/bin/env bash
# Schemathesis (PyPI) against the management API's OpenAPI document, in a virtualenv of its own.
#
#   scripts/schemathesis.sh install
#       makes the virtualenv (target/schemathesis-venv, or $MUTT_SCHEMATHESIS_VENV) and installs
#       schemathesis into it, once.
#   scripts/schemathesis.sh run <base-url> <api-key> [max-examples]
#       runs every operation of <base-url>/api/v2/openapi.json: no 5xx, status codes, content
#       types, headers and bodies as documented; at least max-examples (default 100) generated
#       cases per operation.
#
# Exit 77 when the virtualenv cannot be made or schemathesis cannot be installed (no python3
# venv module, no registry): the caller reports the run as skipped, naming why.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
venv=${MUTT_SCHEMATHESIS_VENV:-$(cd "$here/.." && pwd)/target/schemathesis-venv}
# Major version pinned: the CLI's options changed between 3 and 4.
spec='schemathesis>=4.3,<5'

install() {
  # Made in place (a venv's scripts name its path, so it cannot be moved); the marker is
  # written last, so a broken or half-made install is made again instead of used.
  if [ -f "$venv/.installed" ] && "$venv/bin/schemathesis" --version >/dev/null 2>&1; then return 0; fi
  command -v python3 >/dev/null 2>&1 || { echo "schemathesis: no python3" >&2; exit 77; }
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    echo "schemathesis: python3 cannot make a virtualenv (Debian: apt-get install python3-venv)" >&2
    exit 77
  fi
  if ! "$venv/bin/pip" install -q "$spec" >&2 || ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
    rm -rf "$venv"
    echo "schemathesis: pip could not install $spec" >&2
    exit 77
  fi
  touch "$venv/.installed"
}

case "${1:-}" in
  install)
    install
    ;;
  run)
    [ $# -ge 3 ] || { echo "usage: $0 run <base-url> <api-key> [max-examples]" >&2; exit 2; }
    install
    base=$2 key=$3 examples=${4:-100}
    # Schemathesis keeps a cache in the working directory: a temporary one, removed after.
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cd "$work"
    "$venv/bin/schemathesis" run "$base/api/v2/openapi.json" \
      --url "$base" \
      --header "X-API-KEY: $key" \
      --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
      --max-examples "$examples" \
      --seed 1 \
      --no-color
    ;;
  *)
    echo "usage: $0 install | run <base-url> <api-key> [max-examples]" >&2
    exit 2
    ;;
esac
