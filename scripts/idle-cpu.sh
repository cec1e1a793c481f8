#!/usr/bin/env bash
# CPU time an idle service with vitalsign uses: for each framework, starts the release demo
# (default settings: Prometheus, /stats, the demo's 10 s error-ratio rule), sends it a few
# requests so that its probes and rule have seen traffic, waits SETTLE seconds for that
# traffic to leave every window, then reads the process's user + system time from
# /proc/PID/stat over IDLE seconds in which nothing is sent to it (not even a scrape).
#
#   scripts/idle-cpu.sh                         # axum and actix, 60 s idle each (about 3 minutes)
#   IDLE=30 scripts/idle-cpu.sh actix
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE="${IDLE:-60}"
SETTLE="${SETTLE:-15}"
PORT="${PORT:-3198}"
FRAMEWORKS=("$@")
[ ${#FRAMEWORKS[@]} -eq 0 ] && FRAMEWORKS=(axum actix)
cargo build --release --example demo >&2
BIN="${CARGO_TARGET_DIR:-target}/release/examples/demo"
TICKS=$(getconf CLK_TCK)
SERVER=""
cleanup() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi; }
trap cleanup EXIT

# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat, counted
# after the command name, which may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
threads() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $18 }'; }
# The same for the threads vitalsign starts (named vitalsign-*); its probes run on the
# framework's own runtime threads and count only in the process total.
own_ticks() {
    local sum=0 task
    for task in /proc/"$1"/task/*; do
        case "$(cat "$task/comm")" in
            vitalsign-*) sum=$((sum + $(sed 's/^.*) //' "$task/stat" | awk '{ print $12 + $13 }'))) ;;
        esac
    done
    echo "$sum"
}

echo "| framework | CPU over ${IDLE} s idle | per minute | share of a core | of which vitalsign's threads | threads |"
echo "|---|---:|---:|---:|---:|---:|"
for framework in "${FRAMEWORKS[@]}"; do
    "$BIN" --framework "$framework" --addr "127.0.0.1:$PORT" >/dev/null &
    SERVER=$!
    for _ in $(seq 200); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/health/live" && break
        sleep 0.05
    done
    for path in /users/1 /users/2 /error /no/such/page /users/3; do
        curl -s -o /dev/null "http://127.0.0.1:$PORT$path"
    done
    sleep "$SETTLE"
    before=$(cpu_ticks "$SERVER")
    own_before=$(own_ticks "$SERVER")
    sleep "$IDLE"
    after=$(cpu_ticks "$SERVER")
    own_after=$(own_ticks "$SERVER")
    count=$(threads "$SERVER")
    cleanup
    SERVER=""
    awk -v f="$framework" -v t=$((after - before)) -v o=$((own_after - own_before)) -v hz="$TICKS" -v s="$IDLE" -v n="$count" 'BEGIN {
        cpu = t / hz
        printf "| %s | %.2f s | %.3f s | %.3f %% | %.2f s | %d |\n", f, cpu, cpu * 60 / s, cpu / s * 100, o / hz, n
    }'
done
