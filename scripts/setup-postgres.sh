#!/usr/bin/env bash
# PostgreSQL server binaries for the crash-recovery tests (agent/tests/helpers/postgres.py starts
# a private cluster with initdb/pg_ctl in a temp dir; nothing here starts a service).
# Debian's `postgresql` package; idempotent: apt runs only when initdb is missing.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"
$sudo_ apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
