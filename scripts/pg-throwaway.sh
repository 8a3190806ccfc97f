#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: a temporary directory, a free loopback port, no
# password (trust, loopback only), fsync off (nothing in it is worth keeping). Runs as the
# `postgres` user when started as root (PostgreSQL refuses to run as root).
#
#   url=$(scripts/pg-throwaway.sh start /tmp/pb-pg)   # prints postgres://postgres@127.0.0.1:PORT/postgres
#   PORTBANDIT_POSTGRES_URL=$url npx vitest run test/store/postgres-coordination.test.ts
#   scripts/pg-throwaway.sh stop /tmp/pb-pg            # stops it and deletes the directory
#
# Without a directory, `start` makes one under $TMPDIR and says on stderr how to stop it.
set -euo pipefail

bindir=""
for candidate in "${PG_BINDIR:-}" "$(command -v pg_ctl 2>/dev/null | xargs -r dirname)" /usr/lib/postgresql/*/bin; do
  if [ -n "$candidate" ] && [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then bindir=$candidate; break; fi
done

usage() {
  echo "usage: $0 start [DIR] | stop DIR" >&2
  exit 2
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

cmd=${1:-}
case "$cmd" in
  start)
    if [ -z "$bindir" ]; then
      echo "pg-throwaway: PostgreSQL binaries (initdb, pg_ctl) not found; install them with: apt-get install postgresql (or set PG_BINDIR)" >&2
      exit 3
    fi
    dir=${2:-}
    if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/pb-pg.XXXXXX"); fi
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
      if ! id postgres >/dev/null 2>&1; then
        echo "pg-throwaway: running as root needs a 'postgres' user to own the cluster (apt-get install postgresql creates it)" >&2
        exit 3
      fi
      chown postgres: "$dir"
      chmod 700 "$dir"
      if ! runuser -u postgres -- test -w "$dir"; then
        echo "pg-throwaway: user postgres cannot reach $dir (a parent directory is closed to it); choose a directory under /tmp" >&2
        exit 3
      fi
    fi
    echo "pg-throwaway: initdb in $dir" >&2
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    # A port can be taken between choosing and binding it: try a few.
    for _ in 1 2 3 4 5; do
      port=$(free_port)
      if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null; then
        echo "$port" >"$dir/port"
        echo "pg-throwaway: listening on 127.0.0.1:$port; stop with: $0 stop $dir" >&2
        echo "postgres://postgres@127.0.0.1:$port/postgres"
        exit 0
      fi
    done
    cat "$dir/server.log" >&2
    exit 1
    ;;
  stop)
    dir=${2:-}
    [ -n "$dir" ] || usage
    if [ -f "$dir/data/postmaster.pid" ] && [ -n "$bindir" ]; then
      as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *) usage ;;
esac
