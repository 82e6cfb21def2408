#!/usr/bin/env bash
# Installs what is missing, builds every flavour and runs the whole test suite:
# unit, integration and js-libp2p interop tests (release and ASan+UBSan builds),
# then every libFuzzer target briefly. Ends with one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1
tests/interop/install.sh || exit 1
examples/node/install.sh || exit 1  # clients/node's npm ci: the example runs on that package
# Go client tests and the oracle example: download the pinned modules, warm the build cache
# (77: no go, the tests report themselves skipped).
tests/clients/with-go.sh prepare || [ $? -eq 77 ] || exit 1

status=0
total_passed=0
total_failed=0
run_suite() {
  local flavour=$1
  echo "== build $flavour"
  if ! scripts/build.sh "$flavour"; then
    echo "build $flavour failed"
    status=1
    total_failed=$((total_failed + 1))
    return
  fi
  echo "== test $flavour"
  local log=build/$flavour/ctest.log
  ctest --test-dir "build/$flavour" --output-on-failure -j 2 --timeout 600 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  if [ -n "$line" ]; then
    local failed total
    failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
    total_passed=$((total_passed + total - failed))
    total_failed=$((total_failed + failed))
  else
    status=1
    total_failed=$((total_failed + 1))
  fi
}

run_suite release
run_suite asan
run_suite fuzz

echo "suite: $total_passed passed, $total_failed failed"
exit $status
