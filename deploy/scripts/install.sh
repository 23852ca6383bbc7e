#!/usr/bin/env bash
# Installs mc-proxy on a systemd host: the mc-proxy system user, /srv/mc-proxy with its
# owners and modes, the executables, the backup script, the unit files and the runbook.
# Idempotent: a second run changes nothing that the first one set, and it never touches
# the operator's config, certificates or database contents (it only fixes their owners).
# It does not enable or start anything; it prints the commands that do.
#
#   sudo deploy/scripts/install.sh [--root DIR] [--dist DIR] [--arch x64|arm64]
#
#   --root DIR   install under DIR instead of / (a scratch root for tests or image builds;
#                DIR/etc/passwd, group, shadow and gshadow must exist)
#   --dist DIR   where mc-proxy-linux-<arch> and mcproxyctl-linux-<arch> are (default: dist/
#                of this checkout, as `bun run build` leaves it)
#   --arch A     which executables to install (default: this machine's architecture)
set -euo pipefail

usage() {
  sed -n '8,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() {
  echo "install: $*" >&2
  exit 1
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
root=/
dist="$repo/dist"
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) arch=unknown ;;
esac

while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --dist) dist=${2:?--dist needs a directory}; shift 2 ;;
    --arch) arch=${2:?--arch needs x64 or arm64}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "install: unknown argument \"$1\"" >&2; usage ;;
  esac
done

case "$arch" in
  x64 | arm64) ;;
  *) die "architecture \"$arch\": expected x64 or arm64 (use --arch)" ;;
esac
[ "$(id -u)" -eq 0 ] || die "must run as root (it creates a user and sets owners), running as uid $(id -u)"
[ -d "$root" ] || die "--root \"$root\": not a directory"
root=$(cd "$root" && pwd)
prefix=${root%/} # "" for /, so "$prefix/srv/mc-proxy" is /srv/mc-proxy

USER_NAME=mc-proxy
STATE_DIR=/srv/mc-proxy
bin_src="$dist/mc-proxy-linux-$arch"
ctl_src="$dist/mcproxyctl-linux-$arch"
for file in "$bin_src" "$ctl_src"; do
  [ -f "$file" ] || die "$file not found (run \`bun run build\` first, or pass --dist)"
done

# --- the user -----------------------------------------------------------------------------
# With a scratch root, useradd --prefix edits DIR/etc/* without chrooting.
user_entry() {
  if [ -z "$prefix" ]; then
    getent passwd "$USER_NAME" || true
  else
    grep "^$USER_NAME:" "$prefix/etc/passwd" || true
  fi
}

if [ -z "$(user_entry)" ]; then
  prefix_args=()
  [ -n "$prefix" ] && prefix_args=(--prefix "$prefix")
  useradd "${prefix_args[@]}" --system --user-group --home-dir "$STATE_DIR" --no-create-home \
    --shell /usr/sbin/nologin --comment "mc-proxy TLS SNI router" "$USER_NAME"
  echo "install: created system user $USER_NAME"
else
  echo "install: user $USER_NAME exists"
fi
uid=$(user_entry | cut -d: -f3)
gid=$(user_entry | cut -d: -f4)
if [ -z "$uid" ] || [ -z "$gid" ]; then
  die "cannot read the uid and gid of $USER_NAME"
fi

# --- directories --------------------------------------------------------------------------
# install -d also resets the owner and mode of a directory that exists: a rerun repairs them.
# /srv/mc-proxy        0750 mc-proxy:mc-proxy  database (0600, made by mc-proxy), config
# /srv/mc-proxy/backups 0700 mc-proxy:mc-proxy snapshots (0600)
# /srv/mc-proxy/certs  0750 root:mc-proxy      TLS keys: readable by the service, not writable
install -d -m 0750 -o "$uid" -g "$gid" "$prefix$STATE_DIR"
install -d -m 0700 -o "$uid" -g "$gid" "$prefix$STATE_DIR/backups"
install -d -m 0750 -o 0 -g "$gid" "$prefix$STATE_DIR/certs"
install -d -m 0755 "$prefix/usr/local/bin" "$prefix/usr/local/lib/mc-proxy" \
  "$prefix/usr/local/share/doc/mc-proxy" "$prefix/etc/systemd/system"

# A database or snapshot created by hand as root would stop the service with "permission
# denied": give what is there back to the service user. Contents are never changed.
for file in "$prefix$STATE_DIR"/mc-proxy.db "$prefix$STATE_DIR"/mc-proxy.db-wal \
  "$prefix$STATE_DIR"/mc-proxy.db-shm "$prefix$STATE_DIR"/backups/mc-proxy-*.db; do
  [ -e "$file" ] || continue
  chown "$uid:$gid" "$file"
  chmod 0600 "$file"
done

# --- files --------------------------------------------------------------------------------
# Copy to a temporary name and rename: a running mc-proxy keeps its old executable, and a
# reader never sees half a file. Unchanged files are left as they are.
put() {
  local mode=$1 src=$2 dest=$3
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    chmod "$mode" "$dest"
    chown 0:0 "$dest"
    echo "install: $dest unchanged"
    return
  fi
  install -m "$mode" -o 0 -g 0 "$src" "$dest.install-tmp"
  mv -f "$dest.install-tmp" "$dest"
  echo "install: wrote $dest"
}

put 0755 "$bin_src" "$prefix/usr/local/bin/mc-proxy"
put 0755 "$ctl_src" "$prefix/usr/local/bin/mcproxyctl"
put 0755 "$repo/deploy/scripts/backup.sh" "$prefix/usr/local/lib/mc-proxy/backup.sh"
for unit in mc-proxy.service mc-proxy-backup.service mc-proxy-backup.timer; do
  put 0644 "$repo/deploy/systemd/$unit" "$prefix/etc/systemd/system/$unit"
done
put 0644 "$repo/RUNBOOK.md" "$prefix/usr/local/share/doc/mc-proxy/RUNBOOK.md"
put 0644 "$repo/mc-proxy.toml.example" "$prefix/usr/local/share/doc/mc-proxy/mc-proxy.toml.example"

# --- systemd ------------------------------------------------------------------------------
if [ -z "$prefix" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "install: systemctl daemon-reload done"
fi

if [ ! -f "$prefix$STATE_DIR/mc-proxy.toml" ]; then
  cat <<EOF
install: next steps:
  install -m 0640 -o root -g $USER_NAME /usr/local/share/doc/mc-proxy/mc-proxy.toml.example $STATE_DIR/mc-proxy.toml
  edit $STATE_DIR/mc-proxy.toml (listeners, routes, [grpc] certificates in $STATE_DIR/certs)
  systemctl enable --now mc-proxy.service mc-proxy-backup.timer
EOF
fi
echo "install: done"
