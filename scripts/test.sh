#!/usr/bin/env bash
# `make test`: start the services the suite uses if they are down, then run every test.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "› starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "› starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi

mkdir -p artifacts
started=$(date +%s)
# Two workers (this machine has two cores); the browser tests stay together on one of them.
python -m pytest -n "${BILLY_TEST_WORKERS:-2}" --dist loadgroup --durations=10 "$@"
echo "test suite took $(( $(date +%s) - started ))s"
