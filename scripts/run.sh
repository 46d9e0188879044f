#!/usr/bin/env bash
# `make run`: Billy on its embedded defaults — SQLite and the local encrypted secret store
# under ./data, and the local Stripe sandbox (seeded with demo data) instead of Stripe.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

PORT=${PORT:-3000}
SANDBOX_PORT=${SANDBOX_PORT:-8420}
mkdir -p data/logs

export BILLY_PUBLIC_URL=${BILLY_PUBLIC_URL:-http://localhost:$PORT}
if [ -z "${BILLY_STRIPE_API_BASE+x}" ]; then
  # No Stripe address given: run against the local sandbox.
  export BILLY_STRIPE_API_BASE="http://127.0.0.1:$SANDBOX_PORT"
  export BILLY_SANDBOX=true
  export BILLY_SANDBOX_DEMO_KEY="$(python -c 'import sandbox; print(sandbox.DEMO_RESTRICTED_KEY)')"
fi

echo "› migrating the store"
billy migrate

sandbox_pid=""
cleanup() { [ -n "$sandbox_pid" ] && kill "$sandbox_pid" 2>/dev/null && wait "$sandbox_pid" 2>/dev/null; true; }
trap cleanup EXIT INT TERM

if [ "${BILLY_SANDBOX:-false}" = "true" ]; then
  echo "› starting the Stripe sandbox on port $SANDBOX_PORT (state in data/sandbox)"
  python -m sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" --data-dir data/sandbox >data/logs/sandbox.log 2>&1 &
  sandbox_pid=$!
  for _ in $(seq 1 100); do
    grep -q "sandbox ready" data/logs/sandbox.log 2>/dev/null && break
    kill -0 "$sandbox_pid" 2>/dev/null || { echo "The sandbox did not start:"; tail -20 data/logs/sandbox.log; exit 1; }
    sleep 0.1
  done
  python -m sandbox.seed --api "$BILLY_STRIPE_API_BASE"
fi

echo "› starting Agent Billy (production build)"
echo
echo "    Agent Billy: $BILLY_PUBLIC_URL"
echo
reflex run --env prod --frontend-port "$PORT" --backend-port "$PORT" --loglevel warning
