#!/usr/bin/env bash
# Builds, once, the base images that test/container.test.ts and test/systemd.test.ts run on,
# without a container registry (none is reachable from the test machines):
#
#   localhost/mc-proxy-test/debian:bookworm-rN   debootstrap --variant=minbase bookworm, plus
#                                                systemd, procps, iproute2, openssl, curl and
#                                                sqlite3: the
#                                                "systemd host" of test/systemd.test.ts
#   localhost/mc-proxy-test/bun:1.4.5-rN         that image plus this machine's bun: stands in
#                                                for oven/bun:1.4.5 (the Containerfile's build
#                                                stage)
#   localhost/mc-proxy-test/distroless:nonroot-rN  Debian's libc6, netbase and base-files, a
#                                                nonroot user 65532 and a 1777 /tmp, no shell:
#                                                stands in for
#                                                gcr.io/distroless/base-nossl-debian12:nonroot
#
# They live in podman storage of their own under the cache directory (default
# /var/cache/mc-proxy-test, MC_PROXY_TEST_CACHE to change), with a private containers.conf,
# so nothing of the machine's own podman setup is used or changed. Idempotent: an image that
# exists is kept; only a missing one is built (a cold cache takes 2-4 minutes, mostly
# debootstrap). Two runs at once are serialised by a lock file. The Debian mirror is the one
# apt on this machine uses, read from its sources at run time. Bump REVISION when a recipe
# below changes, so caches built by the old recipe are not used.
#
#   scripts/test-images.sh            build what is missing, print the cache directory
#   scripts/test-images.sh --env      the same, then print the podman environment (KEY=VALUE)
set -euo pipefail
# runc and debootstrap are in /usr/sbin, which a non-login PATH may lack.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

REVISION=1
CACHE=${MC_PROXY_TEST_CACHE:-/var/cache/mc-proxy-test}
RUN_DIR=/run/mc-proxy-test
DEBIAN_IMAGE=localhost/mc-proxy-test/debian:bookworm-r$REVISION
BUN_IMAGE=localhost/mc-proxy-test/bun:1.4.5-r$REVISION
DISTROLESS_IMAGE=localhost/mc-proxy-test/distroless:nonroot-r$REVISION

die() {
  echo "test-images: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (podman storage, debootstrap), running as uid $(id -u)"
for tool in podman runc debootstrap dpkg-deb apt-get flock timeout; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/test-tools.sh installs it)"
done

mkdir -p "$CACHE" "$RUN_DIR"
exec 9>"$CACHE/lock"
if ! flock -w 900 9; then
  die "another run has held $CACHE/lock for 15 minutes; is one stuck? (fuser $CACHE/lock)"
fi

# --- podman, private to the tests -----------------------------------------------------------
# runc: crun refuses this kind of host's hybrid cgroup layout. cgroupfs and a file event log:
# no systemd on the host. nofile: root cannot raise RLIMIT_NOFILE past the host's limit here
# (podman's default asks for more); nproc: podman lowers it itself.
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
cat >"$CACHE/containers.conf.tmp" <<EOF
# Written by scripts/test-images.sh: podman settings for the mc-proxy container tests only.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$RUN_DIR/events.log"
tmp_dir = "$RUN_DIR/libpod"
EOF
mv -f "$CACHE/containers.conf.tmp" "$CACHE/containers.conf"
cat >"$CACHE/storage.conf.tmp" <<EOF
# Written by scripts/test-images.sh: podman storage for the mc-proxy container tests only.
[storage]
driver = "overlay"
graphroot = "$CACHE/storage"
runroot = "$RUN_DIR/storage"
EOF
mv -f "$CACHE/storage.conf.tmp" "$CACHE/storage.conf"
export CONTAINERS_CONF="$CACHE/containers.conf"
export CONTAINERS_STORAGE_CONF="$CACHE/storage.conf"

# Left by a run that was killed: only a run holding the lock builds there.
rm -rf "$CACHE"/build.*
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The mirror apt uses for bookworm: deb822 .sources first, then one-line .list files.
apt_mirror() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    awk 'BEGIN { RS = "" }
      /(^|\n)Types:[^\n]*deb( |\n|$)/ && /(^|\n)Suites:[^\n]*bookworm( |\n|$)/ {
        if (match($0, /URIs:[ \t]*[^ \t\n]+/)) {
          uri = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", uri); print uri; exit
        }
      }' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { if ($(i + 1) == "bookworm") print $i; break } }' "$file"
  done
}

if ! podman image exists "$DEBIAN_IMAGE"; then
  mirror=$(apt_mirror | head -n 1)
  [ -n "$mirror" ] || die "no bookworm mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/ (debootstrap needs one)"
  echo "test-images: building $DEBIAN_IMAGE (debootstrap from $mirror, 1-3 minutes)" >&2
  if ! timeout 900 debootstrap --variant=minbase --include=systemd,procps,iproute2,openssl,curl,sqlite3 \
    bookworm "$work/debian" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap of bookworm from $mirror failed (log above)"
  fi
  rm -rf "$work/debian/var/cache/apt/archives/"*.deb "$work/debian/var/lib/apt/lists/"*
  # A machine-id is made at first boot; an empty file lets systemd do that in the container.
  : >"$work/debian/etc/machine-id"
  tar -C "$work/debian" -c . | podman import --quiet - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$work/debian"
fi

if ! podman image exists "$BUN_IMAGE"; then
  echo "test-images: building $BUN_IMAGE" >&2
  bun=$(command -v bun) || die "bun not found"
  [ "$("$bun" --version)" = 1.4.5 ] || die "bun is $("$bun" --version), the stand-in for oven/bun:1.4.5 needs 1.4.5"
  mkdir -p "$work/bun"
  cp "$(readlink -f "$bun")" "$work/bun/bun"
  # bun install inside the build reaches the npm registry through this machine's TLS setup.
  cp "${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}" "$work/bun/host-ca.crt"
  cat >"$work/bun/Containerfile" <<EOF
FROM $DEBIAN_IMAGE
COPY bun /usr/local/bin/bun
COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt
RUN ln -s bun /usr/local/bin/bunx
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/host-ca.crt
WORKDIR /home/bun/app
EOF
  podman build --quiet --pull=never -t "$BUN_IMAGE" "$work/bun" >/dev/null
fi

if ! podman image exists "$DISTROLESS_IMAGE"; then
  echo "test-images: building $DISTROLESS_IMAGE" >&2
  mkdir -p "$work/debs" "$work/distroless"
  (cd "$work/debs" && apt-get download -q libc6 netbase base-files >/dev/null 2>&1) ||
    die "apt-get download libc6 netbase base-files failed (run apt-get update?)"
  for deb in "$work/debs"/*.deb; do dpkg-deb -x "$deb" "$work/distroless"; done
  root=$work/distroless
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n' >"$root/etc/group"
  install -d -m 1777 "$root/tmp"
  install -d -m 0700 "$root/root"
  install -d -m 0700 -o 65532 -g 65532 "$root/home/nonroot"
  rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian"
  tar -C "$root" -c . | podman import --quiet \
    --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$DISTROLESS_IMAGE" >/dev/null
fi

echo "$CACHE"
if [ "${1:-}" = --env ]; then
  echo "CONTAINERS_CONF=$CONTAINERS_CONF"
  echo "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
  echo "DEBIAN_IMAGE=$DEBIAN_IMAGE"
  echo "BUN_IMAGE=$BUN_IMAGE"
  echo "DISTROLESS_IMAGE=$DISTROLESS_IMAGE"
fi
