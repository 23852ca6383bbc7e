#!/usr/bin/env bash
# Makes sure the real peers the test suite drives are installed: openssl, curl, HAProxy,
# nginx with its stream module, shellcheck, systemd-analyze, Python's prometheus_client, and
# for test/container.test.ts and test/systemd.test.ts podman (with runc: crun refuses some
# hosts' hybrid cgroup layout) and debootstrap (scripts/test-images.sh builds their base
# images with it).
# Installs what is missing with apt-get when it can (root, Debian/Ubuntu); otherwise names
# what is missing and fails.
# Idempotent: a machine that has everything pays one `command -v` per tool.
set -euo pipefail
# runc and debootstrap are in /usr/sbin, which a non-login PATH may lack.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

# tool → Debian package
declare -A PACKAGES=(
  [openssl]=openssl
  [curl]=curl
  [haproxy]=haproxy
  [nginx]=nginx
  [shellcheck]=shellcheck
  [systemd-analyze]=systemd
  [podman]=podman
  [runc]=runc
  [debootstrap]=debootstrap
)

missing=()
for tool in "${!PACKAGES[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGES[$tool]}")
done
# nginx's stream module (ngx_stream_module.so) is a separate package on Debian.
if ! ls /usr/lib/nginx/modules/ngx_stream_module.so >/dev/null 2>&1; then
  missing+=(libnginx-mod-stream)
fi
# The official Prometheus client's text-format parser, which test/observability.test.ts runs on
# /metrics. Debian installs it for the system Python, which the test calls as /usr/bin/python3
# when it exists (a pyenv or venv python3 earlier in PATH would not see it).
python=/usr/bin/python3
[ -x "$python" ] || python=python3
if ! "$python" -c 'import prometheus_client' >/dev/null 2>&1; then
  missing+=(python3-prometheus-client)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-tools: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The nginx package starts a service on install where it can; tests start their own.
  exit 0
fi

echo "test-tools: missing ${missing[*]}; install them (Debian: sudo apt-get install ${missing[*]})" >&2
exit 1
