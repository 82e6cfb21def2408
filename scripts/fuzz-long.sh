#!/usr/bin/env bash
# Long fuzzing runs (issue 10: every target >= 10 M executions without a finding), outside the
# test suite, which keeps its short pass. For each target (all, or those named):
#   runs it for RUNS executions or MAX_SECONDS, whichever comes first, from its committed seeds
#   (fuzz/corpus/<name>, hand-made and valid) and long-run corpus (fuzz/corpus-long/<name>);
#   then merges the new inputs into fuzz/corpus-long/<name> (libFuzzer -merge=1: only inputs
#   that add coverage), so the committed corpus grows with what the run learned;
#   and prints one line per target: executions, seconds, corpus size, and "finding" if libFuzzer
#   stopped on a crash, leak or timeout (the reproducer is left in build/fuzz/long/).
#   scripts/fuzz-long.sh [target...]      RUNS=10000000 MAX_SECONDS=3600 FUZZ_BIN=build/fuzz/fuzz
# FUZZ_BIN: a directory of fuzz_* binaries, e.g. a copy, so the flavour can be rebuilt meanwhile.
# Needs the fuzz flavour (scripts/build.sh fuzz). Runs under nice: it uses idle CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10000000}
MAX_SECONDS=${MAX_SECONDS:-3600}
bin=$(realpath -m "${FUZZ_BIN:-build/fuzz/fuzz}")
[ -d "$bin" ] || { echo "fuzz-long.sh: build the fuzz flavour first (scripts/build.sh fuzz)" >&2; exit 2; }
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$bin"/fuzz_*; do targets+=("$(basename "$f" | sed 's/^fuzz_//')"); done
fi
status=0
for t in "${targets[@]}"; do
  work=build/fuzz/long/$t
  seeds=fuzz/corpus/$t
  corpus=fuzz/corpus-long/$t
  mkdir -p "$work/queue" "$corpus" "$seeds"
  log=$work/run.log
  start=$(date +%s)
  ( cd "$work" && ASAN_OPTIONS=detect_leaks=1 nice -n 19 "$bin/fuzz_$t" -runs="$RUNS" \
      -max_total_time="$MAX_SECONDS" -max_len=70000 -rss_limit_mb=2048 -print_final_stats=1 \
      queue "../../../../$corpus" "../../../../$seeds" ) >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  finding=""
  if grep -qE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|SUMMARY: ' "$log"; then
    finding="finding (see $log)"
    status=1
  elif [ "$rc" -ne 0 ]; then
    finding="exit $rc (see $log)"
    status=1
  fi
  if [ -d "$work/queue" ]; then
    nice -n 19 "$bin/fuzz_$t" -merge=1 -max_len=70000 "$corpus" "$work/queue" >"$work/merge.log" 2>&1
  fi
  cov=$(grep -oE '(DONE|INITED|pulse|NEW|REDUCE) +cov: [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  rate=$(( ${execs:-0} / (secs > 0 ? secs : 1) ))
  echo "fuzz_$t: ${execs:-0} executions in ${secs} s (${rate} exec/s), cov ${cov:-?}, corpus $(ls "$corpus" | wc -l) files ${finding}"
done
exit $status
