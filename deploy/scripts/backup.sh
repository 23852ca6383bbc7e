#!/usr/bin/env bash
# Daily backup of the mc-proxy database (run by mc-proxy-backup.service): one online snapshot
# with `mc-proxy snapshot`, then deletion of the snapshots in the backup directory older than
# MC_PROXY_BACKUP_KEEP_DAYS days (by modification time). Pruning runs only after a snapshot
# succeeded, so a failing backup never eats the last good copies. Only files named
# mc-proxy-*.db directly in the backup directory are ever deleted; anything else is left alone.
#
# Settings (environment):
#   MC_PROXY_BIN               the mc-proxy executable      (default /usr/local/bin/mc-proxy)
#   MC_PROXY_CONFIG            its config                   (default /srv/mc-proxy/mc-proxy.toml)
#   MC_PROXY_BACKUP_DIR        where snapshots go           (default /srv/mc-proxy/backups)
#   MC_PROXY_BACKUP_KEEP_DAYS  age in days before deletion  (default 30)
set -euo pipefail
# As under systemd: started by hand from a directory the service user cannot read (runuser
# from /root), find would warn that it cannot return there.
cd /

bin=${MC_PROXY_BIN:-/usr/local/bin/mc-proxy}
config=${MC_PROXY_CONFIG:-/srv/mc-proxy/mc-proxy.toml}
backup_dir=${MC_PROXY_BACKUP_DIR:-/srv/mc-proxy/backups}
keep_days=${MC_PROXY_BACKUP_KEEP_DAYS:-30}

if ! [[ $keep_days =~ ^[1-9][0-9]*$ ]]; then
  echo "backup: MC_PROXY_BACKUP_KEEP_DAYS \"$keep_days\": expected a whole number of days >= 1" >&2
  exit 2
fi

# The same name `mc-proxy snapshot` gives by default: mc-proxy-<UTC yyyymmddThhmmssZ>.db.
# snapshot creates the directory (0700) and never overwrites an existing file.
target="$backup_dir/mc-proxy-$(date -u +%Y%m%dT%H%M%SZ).db"
written=$("$bin" snapshot -c "$config" -o "$target")
echo "backup: wrote $written"

# -mmin, not -mtime: -mtime +30 rounds ages down to whole days and would keep 30.9-day-old files.
keep_minutes=$((keep_days * 24 * 60))
pruned=0
while IFS= read -r -d '' old; do
  rm -f -- "$old"
  echo "backup: deleted $old (older than $keep_days days)"
  pruned=$((pruned + 1))
done < <(find "$backup_dir" -maxdepth 1 -type f -name 'mc-proxy-*.db' -mmin "+$keep_minutes" -print0)
echo "backup: kept snapshots younger than $keep_days days; deleted $pruned"
