#!/usr/bin/env bash
# Kill-anywhere soak: run the kill-the-primary demo N times (default 50)
# with the master failing at a seeded random point each time, and stop at
# the first run that loses, duplicates or mis-maps an output, replays an
# output that differs from the one released under its key (divergence),
# reports an error, or shows no takeover and replay. Two runs in three
# SIGKILL the master; the third hangs it (SIGSTOP), for good or let go on
# 20-200 ms later while the replica serves.
#   scripts/soak.sh [N] [SEED]
# FTMB_TEST_DIVERGE=1 in the environment (a test-only hook: the replica
# corrupts every output it replays) must make the first run fail.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
seed=${2:-1}
cargo build --release --bin ftmb >/dev/null
RANDOM=$seed
for i in $(seq 1 "$n"); do
  kill_ms=$(( 50 + RANDOM % 900 ))
  threads=$(( 1 + RANDOM % 2 ))
  failure=()
  how="kill"
  case $(( RANDOM % 6 )) in
    4) failure=(--hang); how="hang" ;;
    5) resume=$(( 20 + RANDOM % 180 )); failure=(--hang --resume-ms "$resume"); how="hang, resumed after ${resume} ms" ;;
  esac
  out=$(target/release/ftmb demo --json --packets 60000 --flows 10000 --pps 50000 \
        --snapshot-ms 50 --threads "$threads" --kill-ms "$kill_ms" "${failure[@]}")
  echo "run $i: ${how} at ${kill_ms} ms, ${threads} worker(s): $out"
  echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
why = [k for k, v in [
    ("lost", r["lost"] != 0),
    ("duplicated", r["duplicated"] != 0),
    ("inconsistent", r["consistent"] is not True),
    ("divergence", r.get("divergence") != 0),
    ("errors", r.get("errors") != []),
    ("no takeover", r.get("took_over") is not True),
    ("nothing replayed", not (r.get("replayed_packets") or 0) > 0),
] if v]
if why:
    print("bad: " + ", ".join(why))
sys.exit(1 if why else 0)' || { echo "FAILED at run $i"; exit 1; }
done
echo "soak: $n runs, nothing lost, duplicated, inconsistent or divergent, no errors, every run replayed"
