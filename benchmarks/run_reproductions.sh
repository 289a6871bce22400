#!/usr/bin/env bash
# Run the paper reproductions in full, one after another, logging each to runs/NAME.log.
#   bash benchmarks/run_reproductions.sh [EXPERIMENT[:EPOCHS] ...]
# Without arguments: every experiment at its default (paper) setting. Needs the full MNIST
# (BNN_TEACH_DATA or a cache); results land in runs/NAME/results.json.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin/bnn-teach}
export MPLBACKEND=Agg
specs=("$@")
if [ ${#specs[@]} -eq 0 ]; then
  specs=(sparsevd-lenet300 sparsevd-lenet5 bbb-mnist random-labels sgld-sa compare-pruning)
fi
mkdir -p runs
for spec in "${specs[@]}"; do
  name=${spec%%:*}
  args=(reproduce "$name" --out "runs/$name" --no-progress)
  if [ "$spec" != "$name" ]; then args+=(--epochs "${spec#*:}"); fi
  echo "== $name ($(date -u +%H:%M:%S))"
  /usr/bin/time -v "$BIN" "${args[@]}" > "runs/$name.log" 2>&1 || echo "   $name failed: see runs/$name.log"
  grep -E "Elapsed|Maximum resident" "runs/$name.log" | sed 's/^/   /'
done
