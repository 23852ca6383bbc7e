#!/usr/bin/env bash
# Runs every *.property.test.ts with many more fast-check runs than CI does (FC_NUM_RUNS), on
# demand: after touching a parser or a validator, or overnight.
#
#   scripts/property-long.sh            # 100000 runs per property
#   scripts/property-long.sh 1000000    # more
#   FC_NUM_RUNS=20000 scripts/property-long.sh -- --bail   # bun test options after --
#
# Each property test reads FC_NUM_RUNS (CI keeps its small default). A failure prints the
# fast-check seed and path; replay it in the test with { seed, path } to debug.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

runs="${FC_NUM_RUNS:-100000}"
if [[ $# -gt 0 && "$1" != "--" ]]; then
  runs="$1"
  shift
fi
[[ "${1:-}" == "--" ]] && shift
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "property-long: runs \"$runs\": expected a positive integer" >&2
  exit 2
fi

mapfile -t files < <(find src test -name '*.property.test.ts' -not -path '*/node_modules/*' | sort)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "property-long: no *.property.test.ts files under src/ or test/" >&2
  exit 1
fi

# Generous per-test ceiling: about 20 ms per run, plus a minute, so only a hang times out.
timeout_ms=$((60000 + runs * 20))
echo "property-long: FC_NUM_RUNS=$runs over ${#files[@]} files: ${files[*]}"
FC_NUM_RUNS="$runs" exec bun test --timeout "$timeout_ms" "$@" "${files[@]/#/./}"
