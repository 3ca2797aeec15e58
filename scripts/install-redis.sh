#!/usr/bin/env bash
# Installs redis-server (and redis-cli) from Debian's packages. The Redis tests start
# their own server on a free loopback port; they need only the binary.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "redis-server is missing; install it (e.g. 'sudo apt-get install redis-server')" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
# Debian starts a system-wide server on :6379; the tests never use it, so stop it.
if command -v service >/dev/null 2>&1; then
    service redis-server stop >/dev/null 2>&1 || true
fi
command -v redis-server
