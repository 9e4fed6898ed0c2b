#!/usr/bin/env bash
# Runs every Go fuzz target in the module briefly. The budget is a count of
# executions (default 2000x) rather than a duration, so a loaded machine runs
# the same work instead of hitting the fuzzer's deadline mid-input. A target
# that fails is run once more: a real crasher is saved under testdata/fuzz and
# fails again; a fluke of the fuzzing engine does not.
set -euo pipefail
budget=${1:-2000x}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . | grep -v node_modules | sort | while read -r file; do
  pkg=./$(dirname "${file#./}")
  for fn in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | sed 's/^func //'); do
    echo "fuzz $pkg $fn ($budget)"
    if ! go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$budget" "$pkg" >"$log" 2>&1; then
      echo "  retrying $fn once"
      go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$budget" "$pkg" >"$log" 2>&1 || { cat "$log"; exit 1; }
    fi
  done
done
