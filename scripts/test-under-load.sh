#!/usr/bin/env bash
# Runs the whole test suite (`bun run test`) N times in a row while a CPU burner keeps every
# core busy, prints each run's pass/fail counts, and exits non-zero if any run failed or left
# something behind (scripts/check-leftovers.sh). A suite that is deterministic on a busy machine
# passes every run.
#
#   scripts/test-under-load.sh [RUNS]      RUNS defaults to 3
#
# The burner is stress-ng (`--cpu <cores>`) when installed, else one busy shell loop per core.
# It is bounded twice: `timeout` ends it after MAX_BURN_S (default 3600 s per run), and the
# EXIT trap kills it when this script ends in any way.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "test-under-load: RUNS must be a positive whole number, got \"$runs\"" >&2
  exit 2
fi
cores=$(nproc)
max_burn_s=${MAX_BURN_S:-$((3600 * runs))}

work=$(mktemp -d)
# The runs' temp directories live here and must be reachable like /tmp: some tests drop to
# `nobody` and read files under TMPDIR.
chmod 0711 "$work"
burner_pids=()
stop_burner() {
  local pid
  for pid in "${burner_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${burner_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  burner_pids=()
}
trap 'stop_burner; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# The peers first, so that the runs measure the tests, not apt-get.
bash scripts/test-tools.sh

if command -v stress-ng >/dev/null 2>&1; then
  echo "test-under-load: burner: stress-ng --cpu $cores for at most ${max_burn_s}s"
  timeout "$max_burn_s" stress-ng --cpu "$cores" --quiet &
  burner_pids+=($!)
else
  echo "test-under-load: burner: $cores busy loops for at most ${max_burn_s}s (stress-ng not installed)"
  for _ in $(seq 1 "$cores"); do
    timeout "$max_burn_s" bash -c 'while :; do :; done' &
    burner_pids+=($!)
  done
fi

# bun test's closing "N pass" / "N fail" lines; 0 when a run printed none (it crashed).
count() {
  local n
  n=$(grep -Eo "^ *[0-9]+ $1\$" "$2" | tail -n 1 | tr -dc '0-9' || true)
  echo "${n:-0}"
}

failed_runs=0
summary=()
for run in $(seq 1 "$runs"); do
  run_tmp=$(mktemp -d "$work/tmp-$run.XXXXXX")
  chmod 1777 "$run_tmp"
  run_id="under-load-$$-$run-$(date +%s%N)"
  log="$work/run-$run.log"
  echo "test-under-load: run $run of $runs (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  started=$SECONDS
  set +e
  TMPDIR="$run_tmp" MC_PROXY_TEST_RUN="$run_id" bun run test >"$log" 2>&1
  status=$?
  set -e
  elapsed=$((SECONDS - started))
  leftovers=ok
  bash scripts/check-leftovers.sh "$run_tmp" "$run_id" >>"$log" 2>&1 || leftovers=LEFTOVERS
  rm -rf "$run_tmp"
  passed=$(count pass "$log")
  failed=$(count fail "$log")
  verdict=green
  if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$leftovers" != ok ]; then
    verdict=RED
    failed_runs=$((failed_runs + 1))
    echo "test-under-load: run $run failed; its failures:" >&2
    grep -E '^\(fail\)|^leftovers:|^error:' "$log" | sort -u >&2 || true
  fi
  line="run $run: ${passed} passed, ${failed} failed, exit ${status}, leftovers ${leftovers}, ${elapsed}s: ${verdict}"
  echo "test-under-load: $line"
  summary+=("$line")
done

stop_burner
echo "test-under-load: summary ($runs runs, $cores cores busy)"
printf '  %s\n' "${summary[@]}"
if [ "$failed_runs" -ne 0 ]; then
  echo "test-under-load: $failed_runs of $runs runs failed" >&2
  exit 1
fi
echo "test-under-load: all $runs runs green"
