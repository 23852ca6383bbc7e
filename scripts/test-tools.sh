#!/usr/bin/env bash
# Makes sure the real peers the test suite drives are installed: openssl, curl, HAProxy,
# nginx with its stream module, shellcheck, systemd-analyze, Python's prometheus_client, and
# for test/container.test.ts and test/systemd.test.ts podman (with runc: crun refuses some
# hosts' hybrid cgroup layout) and debootstrap (scripts/test-images.sh builds their base
# images with it).
# Installs what is missing with apt-get when it can (root, Debian/Ubuntu); otherwise names
# what is missing and fails. Returns only once the installs finished and every tool answers,
# so the tests that follow it (`bun run test`) never start against a half-installed machine.
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
# nginx's stream module (ngx_stream_module.so) is a separate package on Debian.
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

# The official Prometheus client's text-format parser, which test/observability.test.ts runs on
# /metrics. Debian installs it for the system Python, which the test calls as /usr/bin/python3
# when it exists (a pyenv or venv python3 earlier in PATH would not see it).
python=/usr/bin/python3
[ -x "$python" ] || python=python3

missing_packages() {
  local tool
  for tool in "${!PACKAGES[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || echo "${PACKAGES[$tool]}"
  done
  [ -e "$STREAM_MODULE" ] || echo libnginx-mod-stream
  "$python" -c 'import prometheus_client' >/dev/null 2>&1 || echo python3-prometheus-client
}

mapfile -t missing < <(missing_packages | sort -u)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-tools: missing ${missing[*]}; install them (Debian: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "test-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The haproxy and nginx packages start their system services on install where they can; the
# tests start their own instances, so keep the packages' daemons from starting at all
# (policy-rc.d exit 101: "action forbidden"), unless the machine already has a policy.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
# Wait for a dpkg lock held by another apt run (a second test run, unattended-upgrades)
# instead of failing on it.
apt=(apt-get -qq -o DPkg::Lock::Timeout=600)
"${apt[@]}" update >/dev/null
"${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
hash -r

# Every tool must answer now; name what still does not.
mapfile -t still < <(missing_packages | sort -u)
if [ ${#still[@]} -ne 0 ]; then
  echo "test-tools: still missing after apt-get install: ${still[*]}" >&2
  exit 1
fi
