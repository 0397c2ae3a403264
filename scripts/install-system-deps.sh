#!/usr/bin/env bash
# Debian packages the tests need: promtool and prometheus (package `prometheus`), Alertmanager
# (`prometheus-alertmanager`, the binary of that name) and amtool, PostgreSQL's server binaries (`postgresql`: the tests
# run initdb and pg_ctl on a throwaway cluster), the openssl command (throwaway certificates for
# the mTLS tests), and chromium (opens the HTML report headless in its browser test).
# The tests start every server themselves; a service a package starts is stopped.
set -euo pipefail
missing=()
command -v promtool >/dev/null && command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null \
  || missing+=(prometheus-alertmanager)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v openssl >/dev/null || missing+=(openssl)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if command -v systemctl >/dev/null; then
  for service in prometheus prometheus-alertmanager postgresql; do
    if systemctl is-active --quiet "$service" 2>/dev/null; then
      $sudo systemctl stop "$service" || true
    fi
  done
fi
command -v promtool >/dev/null
command -v prometheus-alertmanager >/dev/null
command -v amtool >/dev/null
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null
command -v openssl >/dev/null
command -v chromium >/dev/null
