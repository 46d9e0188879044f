#!/usr/bin/env bash
# Debian's Caddy: the reverse proxy that routes {slug}.localhost to each organisation's instance
# (controlplane/proxy.py starts its own `caddy run` on free ports and configures it by its admin API).
# The package also installs a system service on :80 and the admin port 2019; Billy never uses it,
# so it is kept stopped and disabled (a container's policy-rc.d usually stops it starting anyway).
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v caddy >/dev/null; then
  echo "› installing Debian's caddy"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq caddy >/dev/null
fi
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet caddy.service 2>/dev/null; then
  $SUDO systemctl disable --now caddy.service >/dev/null 2>&1
fi
