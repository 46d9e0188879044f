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
# Everything but the browser tests on two workers (this machine has two cores); then the browser
# tests alone, on two workers too, each module on one worker (`--dist loadfile`) with its own app,
# port and frontend build (REFLEX_WEB_WORKDIR=.web-gwN, devtools/app_runner.py). They are not run
# beside the rest: sharing the two cores with the CPU-bound suite made their timings flaky.
status=0
# The fast half of `make lint` (under a second): style, formatting and the import contracts, so a
# slip fails CI rather than waiting for the next author's `make lint`. mypy (about 18 s from cold)
# stays in `make lint` alone.
echo "› lint: ruff check, ruff format --check, lint-imports"
{ ruff check --quiet . && ruff format --check --quiet . && lint-imports; } || { echo "✗ lint failed (run make lint)"; status=1; }
python -m pytest -n "${BILLY_TEST_WORKERS:-2}" -m "not browser" --junitxml=artifacts/junit-main.xml "$@" || { rc=$?; [ "$rc" -eq 5 ] || status=$rc; }
# Every browser test lives in tests/browser (test_foundations checks): collecting only that folder
# spares each worker importing the whole suite to deselect it (18 s against 6 s a process).
browser_paths=(); [ "$#" -eq 0 ] && browser_paths=(tests/browser)
python -m pytest -n "${BILLY_BROWSER_WORKERS:-2}" --dist loadfile -m browser --junitxml=artifacts/junit-browser.xml "${browser_paths[@]}" "$@" || { rc=$?; [ "$rc" -eq 5 ] || status=$rc; }
python scripts/slowest.py artifacts/junit-main.xml artifacts/junit-browser.xml
echo "test suite took $(( $(date +%s) - started ))s"
exit "$status"
