#!/usr/bin/env bash
# Fails when a test run left something behind: anything in the run's own temp directory, or a
# process that still carries the run's marker in its environment. A run sets both up like this:
#
#   run_tmp=$(mktemp -d); chmod 1777 "$run_tmp"; run_id=some-unique-string
#   TMPDIR="$run_tmp" MC_PROXY_TEST_RUN="$run_id" bun test ...
#   bash scripts/check-leftovers.sh "$run_tmp" "$run_id"
#
# Every process the tests start inherits both (the helpers pass process.env on), so this sees
# exactly this run's leftovers even while other runs share the machine. A child killed at the
# very end of the run may take a moment to go: processes get up to 15 s to exit.
set -euo pipefail

if [ $# -ne 2 ] || [ ! -d "$1" ] || [ -z "$2" ]; then
  echo "usage: $0 RUN_TMPDIR RUN_ID" >&2
  exit 2
fi
run_tmp=$1
run_id=$2

leftover_processes() {
  local environ pid
  for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}
    pid=${pid%/environ}
    # -z: environ is NUL-separated; -s: processes that are gone or not ours to read are skipped.
    if grep -qsxzF "MC_PROXY_TEST_RUN=$run_id" "$environ"; then
      echo "  pid $pid: $( { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)"
    fi
  done
}

left=$(leftover_processes)
deadline=$((SECONDS + 15))
while [ -n "$left" ] && [ "$SECONDS" -lt "$deadline" ]; do
  sleep 0.5
  left=$(leftover_processes)
done

leaks=0
if [ -n "$left" ]; then
  echo "leftovers: processes started by the tests still run:" >&2
  echo "$left" >&2
  leaks=1
fi
if [ -n "$(ls -A "$run_tmp")" ]; then
  echo "leftovers: the tests left these in the temp directory ($run_tmp):" >&2
  ls -lA "$run_tmp" >&2
  leaks=1
fi
if [ "$leaks" -ne 0 ]; then
  echo "leftovers: every test must remove its temp dirs and stop its processes" >&2
  exit 1
fi
echo "leftovers: none (temp directory empty, no test process running)"
