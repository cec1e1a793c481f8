#!/usr/bin/env bash
# Loopback load: for each framework, the same route served bare, with vitalsign and with the
# peer crate (one server worker pinned to core 0, wrk pinned to core 1), alternating ROUNDS
# times. Reports the median requests/s and server CPU time per request (from /proc/PID/stat
# around each run), and their ratios to bare. Needs wrk (Debian's `wrk`) and taskset.
#
#   scripts/bench-load.sh            # 3 rounds of 5 s per variant (about 2 minutes)
#   ROUNDS=5 DURATION=10 scripts/bench-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
PORT="${PORT:-3199}"
command -v wrk >/dev/null || { echo "bench-load: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
cargo bench -p vitalsign-benches --bench bench_server --no-run >&2
BIN=$(ls -t target/release/deps/bench_server-* | grep -v "\.d$" | head -1)
TICKS=$(getconf CLK_TCK)
SERVER=""
cleanup() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run FRAMEWORK VARIANT -> prints "requests_per_second cpu_us_per_request"
run() {
    taskset -c 0 "$BIN" "$1" "$2" "127.0.0.1:$PORT" >/dev/null &
    SERVER=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/users/1" && break
        sleep 0.05
    done
    taskset -c 1 wrk -t1 -c32 -d1s "http://127.0.0.1:$PORT/users/42" >/dev/null # warm-up
    local before after out requests
    before=$(cpu_ticks "$SERVER")
    out=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" "http://127.0.0.1:$PORT/users/42")
    after=$(cpu_ticks "$SERVER")
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    cleanup
    SERVER=""
    awk -v r="$requests" -v d="$DURATION" -v t=$((after - before)) -v hz="$TICKS" \
        'BEGIN { printf "%.0f %.3f\n", r / d, t / hz * 1e6 / r }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

for framework in axum actix; do
    declare -A RPS=() CPU=()
    for round in $(seq "$ROUNDS"); do
        for variant in bare vitalsign peer; do
            read -r rps cpu < <(run "$framework" "$variant")
            RPS[$variant]+="$rps "
            CPU[$variant]+="$cpu "
            echo "$framework round $round $variant: $rps req/s, $cpu us CPU/request" >&2
        done
    done
    bare_rps=$(echo "${RPS[bare]}" | tr ' ' '\n' | grep . | median)
    bare_cpu=$(echo "${CPU[bare]}" | tr ' ' '\n' | grep . | median)
    echo
    echo "$framework (median of $ROUNDS rounds, ${DURATION}s each, wrk -t1 -c32, server on one core)"
    echo "| variant | req/s | ratio to bare | server CPU µs/request | added CPU µs/request |"
    echo "|---|---:|---:|---:|---:|"
    for variant in bare vitalsign peer; do
        rps=$(echo "${RPS[$variant]}" | tr ' ' '\n' | grep . | median)
        cpu=$(echo "${CPU[$variant]}" | tr ' ' '\n' | grep . | median)
        awk -v n="$variant" -v r="$rps" -v c="$cpu" -v br="$bare_rps" -v bc="$bare_cpu" \
            'BEGIN { printf "| %s | %.0f | %.2f | %.2f | %+.2f |\n", n, r, r / br, c, c - bc }'
    done
    unset RPS CPU
done
