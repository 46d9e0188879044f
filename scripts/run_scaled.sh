#!/usr/bin/env bash
# `make run-scaled WORKERS=4`: Billy as it runs scaled out — N workers behind one port, sharing
# PostgreSQL (each refund's lock, the budgets, the store) and Redis (each tab's state, the live
# updates, the Stripe request gate) — with the local Stripe sandbox and its demo data, as `make run`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

WORKERS=${WORKERS:-4}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_USER=${PG_USER:-postgres}
PG_DB=${PG_DB:-billy_scaled}

if ! pg_isready -q -h "$PG_HOST" -p 5432 2>/dev/null; then
  echo "› starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 50); do pg_isready -q -h "$PG_HOST" -p 5432 && break; sleep 0.2; done
fi
if [ -z "${BILLY_REDIS_URL:-}" ] && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "› starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi

# The store: its own PostgreSQL database, made on the first run (`scripts/run.sh` migrates it).
PG_HOST=$PG_HOST PG_USER=$PG_USER PG_DB=$PG_DB python - <<'PY'
import os

import psycopg2

conn = psycopg2.connect(host=os.environ["PG_HOST"], user=os.environ["PG_USER"], dbname="postgres")
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (os.environ["PG_DB"],))
    if cur.fetchone() is None:
        cur.execute(f'CREATE DATABASE "{os.environ["PG_DB"]}"')
        print(f"› created the PostgreSQL database {os.environ['PG_DB']}")
conn.close()
PY

export BILLY_DATABASE_URL=${BILLY_DATABASE_URL:-postgresql+psycopg2://$PG_USER@$PG_HOST/$PG_DB}
# Database 1 of the local Redis: `make test` uses database 0 of the same server.
export BILLY_REDIS_URL=${BILLY_REDIS_URL:-redis://127.0.0.1:6379/1}
# The secret store, sandbox state, mail and logs of this instance: apart from `make run`'s ./data.
export BILLY_DATA_DIR=${BILLY_DATA_DIR:-data-scaled}
export GRANIAN_WORKERS=$WORKERS
echo "› $WORKERS workers on PostgreSQL ($PG_DB) and Redis ($BILLY_REDIS_URL)"
exec "$ROOT/scripts/run.sh"
