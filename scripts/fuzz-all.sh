#!/usr/bin/env bash
# Runs every Go fuzz target in the module briefly (default 3s each).
set -euo pipefail
t=${1:-3s}
grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . | grep -v node_modules | sort | while read -r file; do
  pkg=./$(dirname "${file#./}")
  for fn in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | sed 's/^func //'); do
    echo "fuzz $pkg $fn ($t)"
    go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" "$pkg" >/tmp/herald-fuzz.log 2>&1 || { cat /tmp/herald-fuzz.log; exit 1; }
  done
done
