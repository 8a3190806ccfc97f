#!/usr/bin/env bash
# Sets up a fresh machine for portbandit: Debian packages (nmap, masscan, iproute2, nftables, chromium,
# postgresql) when missing, then the npm dependencies. Safe to run again.
# PostgreSQL is for the PostgreSQL store's tests (a throwaway cluster per test file,
# scripts/pg-throwaway.sh) and for several coordinators on one database (docs/store.md).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nmap >/dev/null 2>&1 || need+=(nmap)
command -v masscan >/dev/null 2>&1 || need+=(masscan)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# Debian keeps initdb/pg_ctl in /usr/lib/postgresql/<version>/bin, off the PATH.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then need+=(postgresql); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need[*]} from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    echo "setup: without nmap the port catalog cannot load; without masscan agents use the connect sweep;" >&2
    echo "setup: without postgresql the PostgreSQL store's tests are skipped (and fail under CI=true)" >&2
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies (better-sqlite3 builds from source, ~100 s)" >&2
  npm ci --no-audit --no-fund
fi
