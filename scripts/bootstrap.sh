#!/usr/bin/env bash
# Install what Billy needs, once: re-running is a no-op unless a pinned file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
BUN_VERSION=1.4.4
UV_VERSION=0.9.30  # installs the pinned packages in seconds where pip took about a minute

if [ ! -x .venv/bin/python ]; then
  echo "› creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

if [ "$(.venv/bin/uv --version 2>/dev/null)" != "uv $UV_VERSION" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
# --compile-bytecode: as pip does. This machine sets PYTHONDONTWRITEBYTECODE, so a package left
# uncompiled is compiled again by every process that imports it (the suite ran 50% slower).
uv_install() { .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python "$@"; }

stamp=".venv/.installed-$(cat requirements.txt requirements-dev.txt constraints.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "› installing pinned Python packages"
  uv_install -r requirements-dev.txt -c constraints.txt
  uv_install --no-deps --no-build-isolation -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
[ -x .venv/bin/agent-billy ] || uv_install --no-deps --no-build-isolation -e clients/agent_billy  # the CLI (clients/README.md)

# Reflex needs bun and would otherwise download an installer from the web (not reachable
# here); the npm package of the same name ships the real binary.
if [ ! -x .tools/bun/bin/bun ] || [ "$(.tools/bun/bin/bun --version 2>/dev/null)" != "$BUN_VERSION" ]; then
  echo "› installing bun $BUN_VERSION from the npm registry"
  npm install --global --silent --prefix .tools/bun "bun@$BUN_VERSION"
fi
