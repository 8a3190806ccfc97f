#!/usr/bin/env bash
# Sets up a fresh machine for portbandit: Debian packages (nmap, masscan, iproute2, nftables, chromium)
# when missing, then the npm dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nmap >/dev/null 2>&1 || need+=(nmap)
command -v masscan >/dev/null 2>&1 || need+=(masscan)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need[*]} from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    echo "setup: without nmap the port catalog cannot load; without masscan agents use the connect sweep" >&2
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies (better-sqlite3 builds from source, ~100 s)" >&2
  npm ci --no-audit --no-fund
fi
