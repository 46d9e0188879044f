#!/usr/bin/env bash
# `make run-controlplane`: the control plane on this machine. Signup at http://localhost:$PORT, each
# organisation's own instance (own process, port, SQLite store, secret store) at
# http://<name>.localhost:$PORT through Caddy. Two Stripe sandboxes: the customers' Stripe, which
# every instance connects to with the demo key, and Billy's own account, where Billy's
# subscriptions live. Mail (invites, trial reminders) goes to the local mail catcher.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

PORT=${PORT:-8000}
SANDBOX_PORT=${SANDBOX_PORT:-8420}
BILLY_SANDBOX_PORT=${BILLY_SANDBOX_PORT:-8421}
MAIL_PORT=${MAIL_PORT:-1025}
MAIL_WEB_PORT=${MAIL_WEB_PORT:-8025}
DATA=${CONTROLPLANE_DATA:-data-controlplane}
mkdir -p "$DATA/logs"

source "$(dirname "$0")/helpers.sh"  # start_and_wait, and every helper stopped on exit

echo "› mail catcher: smtp://127.0.0.1:$MAIL_PORT, sent mail at http://localhost:$MAIL_WEB_PORT"
start_and_wait "mail catcher" "$DATA/logs/mail.log" "mail catcher ready" \
  python -m devtools.mailcatcher --smtp-port "$MAIL_PORT" --http-port "$MAIL_WEB_PORT" --data-dir "$DATA/mail"
echo "› customers' Stripe sandbox: http://127.0.0.1:$SANDBOX_PORT"
start_and_wait "customers' Stripe sandbox" "$DATA/logs/sandbox.log" "sandbox ready" \
  python -m sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" --data-dir "$DATA/sandbox"
printf "› "; python -m sandbox.seed --api "http://127.0.0.1:$SANDBOX_PORT"
echo "› Billy's own Stripe sandbox: http://127.0.0.1:$BILLY_SANDBOX_PORT"
start_and_wait "Billy's Stripe sandbox" "$DATA/logs/billy-sandbox.log" "sandbox ready" \
  python -m sandbox --host 127.0.0.1 --port "$BILLY_SANDBOX_PORT" --data-dir "$DATA/billy-sandbox"

export BILLY_CONTROLPLANE_ROOT="$ROOT/$DATA/controlplane"
export BILLY_CONTROLPLANE_STRIPE_API_BASE="http://127.0.0.1:$BILLY_SANDBOX_PORT"
export BILLY_CONTROLPLANE_STRIPE_SECRET_KEY=sk_test_billy_own_account
export BILLY_CONTROLPLANE_STRIPE_WEBHOOK_SECRET=whsec_billy_local_controlplane_000000000000
export BILLY_CONTROLPLANE_SMTP_HOST=127.0.0.1 BILLY_CONTROLPLANE_SMTP_PORT=$MAIL_PORT
# Every local signup comes from one address (this machine): allow trying a few more than 3 an hour.
export BILLY_CONTROLPLANE_SIGNUPS_PER_HOUR=${BILLY_CONTROLPLANE_SIGNUPS_PER_HOUR:-20}
export BILLY_CONTROLPLANE_INSTANCE_STRIPE_API_BASE="http://127.0.0.1:$SANDBOX_PORT" BILLY_CONTROLPLANE_INSTANCE_SANDBOX=true
export BILLY_CONTROLPLANE_INSTANCE_SANDBOX_DEMO_KEY="$(python -c 'import sandbox; print(sandbox.DEMO_RESTRICTED_KEY)')"
export BILLY_CONTROLPLANE_INSTANCE_SMTP_HOST=127.0.0.1 BILLY_CONTROLPLANE_INSTANCE_SMTP_PORT=$MAIL_PORT
export BILLY_CONTROLPLANE_INSTANCE_WEB_WORKDIR=.web-controlplane  # its own build: `make run` builds .web for its own port
# Billy's own account sends its subscription events to the control plane's webhook.
python - <<PY
import httpx
httpx.post("http://127.0.0.1:$BILLY_SANDBOX_PORT/_config/webhooks/controlplane",
           data={"url": "http://127.0.0.1:$((PORT + 1))/stripe/webhook", "secret": "$BILLY_CONTROLPLANE_STRIPE_WEBHOOK_SECRET"},
           timeout=10).raise_for_status()
PY
echo "› the first organisation's instance builds the pages once (a few minutes); later ones reuse them"
# Not exec: when the control plane stops (Ctrl-C, or a TERM to it or to this script), the trap
# stops the sandboxes and the mail catcher too; the control plane stops its instances and Caddy.
python -m controlplane --port "$PORT" serve --web-port "$((PORT + 1))" &
children=("$!" "${children[@]}")
wait "${children[0]}"
