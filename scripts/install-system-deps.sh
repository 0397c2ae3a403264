#!/usr/bin/env bash
# Debian packages the tests need: promtool and prometheus (package `prometheus`), the openssl
# command (throwaway certificates for the mTLS tests), and chromium (opens the HTML report
# headless in its browser test).
# Installing them does not leave a service running that the tests depend on.
set -euo pipefail
missing=()
command -v promtool >/dev/null && command -v prometheus >/dev/null || missing+=(prometheus)
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
# The package may start a system service; the tests start their own Prometheus.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  $sudo systemctl stop prometheus || true
fi
command -v promtool >/dev/null
command -v openssl >/dev/null
command -v chromium >/dev/null
