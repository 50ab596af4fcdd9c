#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL server on 127.0.0.1, then remove the server.
#
#   bash scripts/ci_postgres.sh python -m pytest -q tests/service/test_ledger.py tests/service/test_postgres.py
#
# Installs what is missing (the Debian package `postgresql` when root, the `psycopg` v3 driver via pip),
# creates a cluster in a temporary folder (initdb as the `postgres` user when run as root), starts it
# on a free loopback port (no TCP listener on any other address; trust auth, which is safe only
# because nothing but loopback can reach it), exports
#   ENCODER_AUDIT_POSTGRES_DSN=postgresql://postgres@127.0.0.1:PORT/postgres
# for the command, and stops and deletes the cluster on exit, whatever the command's status.
# The command's exit status is the script's. The cluster runs with fsync=off (a throwaway test
# server); ENCODER_AUDIT_PG_FSYNC=on keeps PostgreSQL's durable default, for benchmarks.
set -euo pipefail
PYTHON="${PYTHON:-python3}"

if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]   (runs COMMAND with ENCODER_AUDIT_POSTGRES_DSN set)" >&2
  exit 2
fi

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

if ! BINDIR="$(find_bindir)"; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ci_postgres: installing the Debian package postgresql" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    BINDIR="$(find_bindir)"
  else
    echo "ci_postgres: PostgreSQL is not installed (sudo apt-get install postgresql)" >&2
    exit 1
  fi
fi

if ! "$PYTHON" -c "import psycopg" 2>/dev/null; then
  echo "ci_postgres: installing the psycopg driver" >&2
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "psycopg[binary]>=3.1"
fi

DATA="$(mktemp -d /tmp/encoder-audit-pg.XXXXXX)"
PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
AS=()
if [ "$(id -u)" = "0" ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DATA" --shell /usr/sbin/nologin postgres
  chown postgres "$DATA"
  AS=(runuser -u postgres --)
fi

cleanup() {
  "${AS[@]}" "$BINDIR/pg_ctl" -D "$DATA/db" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DATA"
}
trap cleanup EXIT

"${AS[@]}" "$BINDIR/initdb" -D "$DATA/db" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
"${AS[@]}" "$BINDIR/pg_ctl" -D "$DATA/db" -l "$DATA/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c fsync=${ENCODER_AUDIT_PG_FSYNC:-off} -c max_connections=200" start >/dev/null \
  || { cat "$DATA/server.log" >&2; exit 1; }

export ENCODER_AUDIT_POSTGRES_DSN="postgresql://postgres@127.0.0.1:$PORT/postgres"
echo "ci_postgres: PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT" >&2
set +e
"$@"
status=$?
set -e
exit $status
