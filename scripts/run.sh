#!/usr/bin/env bash
# `make run`: Billy on its embedded defaults — SQLite and the local encrypted secret store
# under ./data, and the local Stripe sandbox (seeded with demo data) instead of Stripe.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

PORT=${PORT:-3000}
SANDBOX_PORT=${SANDBOX_PORT:-8420}
MAIL_PORT=${MAIL_PORT:-1025}
MAIL_WEB_PORT=${MAIL_WEB_PORT:-8025}
DATA=${BILLY_DATA_DIR:-data}  # the store, secret store, sandbox state, mail and logs
mkdir -p "$DATA/logs"

export BILLY_PUBLIC_URL=${BILLY_PUBLIC_URL:-http://localhost:$PORT}
if [ -z "${BILLY_STRIPE_API_BASE+x}" ]; then
  # No Stripe address given: run against the local sandbox.
  export BILLY_STRIPE_API_BASE="http://127.0.0.1:$SANDBOX_PORT"
  export BILLY_SANDBOX=true
  export BILLY_SANDBOX_DEMO_KEY="$(python -c 'import sandbox; print(sandbox.DEMO_RESTRICTED_KEY)')"
fi

# Migrate while the mail catcher and the sandbox start (each takes a second or two on its own).
billy migrate >"$DATA/logs/migrate.log" 2>&1 &
migrating=$!

source "$(dirname "$0")/helpers.sh"  # start_and_wait, and every helper stopped on exit

if [ -z "${BILLY_SMTP_HOST+x}" ]; then
  # No mail server given: catch invites and reset links locally, readable in a browser.
  export BILLY_SMTP_HOST=127.0.0.1 BILLY_SMTP_PORT=$MAIL_PORT BILLY_SMTP_TLS=none
  echo "› mail catcher: smtp://127.0.0.1:$MAIL_PORT, sent mail at http://localhost:$MAIL_WEB_PORT"
  start_and_wait "mail catcher" "$DATA/logs/mail.log" "mail catcher ready" \
    python -m devtools.mailcatcher --smtp-port "$MAIL_PORT" --http-port "$MAIL_WEB_PORT" --data-dir "$DATA/mail"
fi

if [ "${BILLY_SANDBOX:-false}" = "true" ]; then
  echo "› Stripe sandbox: $BILLY_STRIPE_API_BASE (state in $DATA/sandbox)"
  start_and_wait "Stripe sandbox" "$DATA/logs/sandbox.log" "sandbox ready" \
    python -m sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" --data-dir "$DATA/sandbox"
  printf "› "
  python -m sandbox.seed --api "$BILLY_STRIPE_API_BASE"
fi

if ! wait "$migrating"; then echo "The store could not be migrated:"; cat "$DATA/logs/migrate.log"; exit 1; fi
printf "› "; cat "$DATA/logs/migrate.log"
echo "› Agent Billy: $BILLY_PUBLIC_URL (pages, API and live updates on port $PORT; Ctrl-C stops everything)"
# Not exec: when Billy stops for any reason (Ctrl-C, a TERM to it or to this script, a crash),
# the trap stops the mail catcher and the sandbox too. Left running, they held their ports and
# the next `make run` stopped with "address already in use".
python -m billy_app.serve --port "$PORT" --loglevel warning &
children=("$!" "${children[@]}")
wait "${children[0]}"
