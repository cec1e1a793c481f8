#!/usr/bin/env bash
# Instructions per request of each variant of `benches/compare.rs`, counted by callgrind on the
# thread that serves the requests: steady where timings on a shared machine are not. Each
# variant runs twice (SMALL and LARGE requests, no warm-up); the difference divided by
# LARGE - SMALL is the per-request count, set-up and warm-up cancelling out.
#
#   scripts/bench-instructions.sh                 # every variant (about 5 minutes)
#   scripts/bench-instructions.sh axum vitalsign  # one part, one variant
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/callgrind-lib.sh
. scripts/callgrind-lib.sh

# count PART VARIANT N -> "ALL ALLOCATOR": instructions executed by the main thread, and those
# of them inside glibc's malloc and free (every function of malloc/malloc.c)
count() {
    local file all allocator
    file=$(callgrind "$1" "$2" "$3")
    all=$(awk '/^summary:/ { print $2 }' "$file")
    allocator=$(callgrind_annotate --inclusive=no --threshold=100 "$file" 2>/dev/null |
        awk '/malloc\/malloc\.c:/ { n = $1; gsub(",", "", n); sum += n } END { print sum + 0 }')
    echo "$all $allocator"
    rm -f "$file"
}

# per_request PART VARIANT -> "ALL ALLOCATOR" per request
per_request() {
    local small large
    small=$(count "$1" "$2" "$SMALL")
    large=$(count "$1" "$2" "$LARGE")
    awk -v s="$small" -v l="$large" -v n=$((LARGE - SMALL)) 'BEGIN {
        split(s, a, " "); split(l, b, " ")
        printf "%.0f %.0f", (b[1] - a[1]) / n, (b[2] - a[2]) / n }'
}

if [ $# -eq 2 ]; then
    read -r n allocator <<<"$(per_request "$1" "$2")"
    echo "$1 $2: $n instructions/request, $allocator of them in glibc's malloc and free"
    exit 0
fi
for part in axum actix grpc; do
    if [ "$part" = axum ]; then
        variants=("bare axum" "identity layer" "pass-through layer" "vitalsign MonitorLayer" "README wires" "bare axum + endpoints" "axum-prometheus")
    elif [ "$part" = grpc ]; then
        variants=("bare tonic" "vitalsign GrpcLayer")
    else
        variants=("bare actix-web" "pass-through middleware" "vitalsign Monitoring" "README wires" "Monitoring + configure after" "Monitoring + configure before" "bare actix-web + configure before" "bare actix-web + configure after" "actix-web-prom")
    fi
    bare=""
    echo
    echo "$part: instructions per request (callgrind, main thread, $((LARGE - SMALL)) requests)"
    echo "| variant | instructions/request | added over bare | of which in malloc/free |"
    echo "|---|---:|---:|---:|"
    for variant in "${variants[@]}"; do
        read -r n allocator <<<"$(per_request "$part" "$variant")"
        if [ -z "$bare" ]; then
            bare=$n
            bare_allocator=$allocator
        fi
        echo "| $variant | $n | $((n - bare)) | $((allocator - bare_allocator)) |"
    done
done
echo
# instructions PART VARIANT -> per request, all of them
instructions() {
    per_request "$1" "$2" | cut -d' ' -f1
}
echo "core: begin + complete: $(instructions core core) instructions/request (Prometheus), $(instructions core influx) (InfluxDB queue), $(instructions core statsd) (StatsD)"
echo "core: with a sampled traceparent (an exemplar each): $(instructions core traced); with native histograms on: $(instructions core native)"
