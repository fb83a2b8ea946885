#!/usr/bin/env bash
# Kill-anywhere soak: run the kill-the-primary demo N times (default 50)
# with the master SIGKILLed at a seeded random point each time, and stop at
# the first run that loses, duplicates or mis-maps an output.
#   scripts/soak.sh [N] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
seed=${2:-1}
cargo build --release --bin ftmb >/dev/null
RANDOM=$seed
for i in $(seq 1 "$n"); do
  kill_ms=$(( 50 + RANDOM % 900 ))
  threads=$(( 1 + RANDOM % 2 ))
  out=$(target/release/ftmb demo --json --packets 60000 --flows 10000 --pps 50000 \
        --snapshot-ms 50 --threads "$threads" --kill-ms "$kill_ms")
  echo "run $i: kill at ${kill_ms} ms, ${threads} worker(s): $out"
  echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
bad = r["lost"] or r["duplicated"] or not r["consistent"]
sys.exit(1 if bad else 0)' || { echo "FAILED at run $i"; exit 1; }
done
echo "soak: $n runs, nothing lost, duplicated or inconsistent"
