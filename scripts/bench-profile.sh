#!/usr/bin/env bash
# Where the instructions a variant of `benches/compare.rs` adds over another go, per request:
# callgrind's self cost of every function on the serving thread, counted the way
# `scripts/bench-instructions.sh` counts (SMALL and LARGE requests, the difference divided by
# LARGE - SMALL, set-up cancelled out), then the difference between the two variants, by part
# and by function.
#
#   scripts/bench-profile.sh axum "identity layer" "vitalsign MonitorLayer"
#   scripts/bench-profile.sh actix "bare actix-web" "vitalsign Monitoring" 60
#
# Parts: code of vitalsign-core (wherever it was inlined), code of the adapter, glibc's
# malloc/free, memcpy (moves of futures, bodies and responses too large to be moved inline), and
# the rest: functions not inlined into vitalsign's (the framework, http, quanta, tokio, std).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
    echo "usage: $0 PART BASE-VARIANT VARIANT [ROWS]" >&2
    exit 2
fi
PART="$1"
BASE="$2"
VARIANT="$3"
ROWS="${4:-40}"
# shellcheck source=scripts/callgrind-lib.sh
. scripts/callgrind-lib.sh

# self_costs VARIANT N FILE: "COST<TAB>SOURCE:FUNCTION" lines of the serving thread
self_costs() {
    local file
    file=$(callgrind "$PART" "$1" "$2")
    callgrind_annotate --inclusive=no --tree=none --auto=no --show-percs=no --threshold=100 "$file" 2>/dev/null |
        awk '$1 ~ /^[0-9,]+$/ && $2 ~ /:/ {
            n = $1; gsub(",", "", n); $1 = ""; sub(/^ /, ""); sub(/ \[[^]]*\]$/, "")
            print n "\t" $0 }' >"$3"
    rm -f "$file"
}

self_costs "$BASE" "$SMALL" "$OUT/base.small"
self_costs "$BASE" "$LARGE" "$OUT/base.large"
self_costs "$VARIANT" "$SMALL" "$OUT/variant.small"
self_costs "$VARIANT" "$LARGE" "$OUT/variant.large"

awk -F'\t' -v n=$((LARGE - SMALL)) -v rows="$ROWS" -v base="$BASE" -v variant="$VARIANT" '
    function part(name) {
        if (name ~ /vitalsign-core\//) return "vitalsign-core"
        if (name ~ /vitalsign-(tower|actix)\//) return "adapter"
        if (name ~ /malloc\/malloc\.c:/) return "glibc malloc/free"
        if (name ~ /memmove|memcpy/) return "memcpy"
        if (name ~ /:.*vitalsign_core/) return "vitalsign-core"
        if (name ~ /:.*vitalsign_(tower|actix)/) return "adapter"
        return "other functions (framework, http, quanta, tokio, std)"
    }
    FILENAME ~ /base.small$/ { cost[$2] += $1 }
    FILENAME ~ /base.large$/ { cost[$2] -= $1 }
    FILENAME ~ /variant.small$/ { cost[$2] -= $1 }
    FILENAME ~ /variant.large$/ { cost[$2] += $1 }
    END {
        # cost = (variant.large - variant.small) - (base.large - base.small)
        for (name in cost) {
            d = cost[name] / n
            parts[part(name)] += d
            total += d
        }
        printf "%s over %s: %+.0f instructions a request\n\n", variant, base, total
        printf "| part | instructions a request |\n|---|---:|\n"
        for (p in parts) printf "| %s | %+.0f |\n", p, parts[p] | "sort -t\"|\" -k3 -g -r"
        close("sort -t\"|\" -k3 -g -r")
        printf "\nby function (source of the code : function it ran in), largest first:\n"
        for (name in cost) {
            d = cost[name] / n
            if (d >= 2 || d <= -2) printf "%+8.0f  %s\n", d, name | "sort -g -r -k1 | head -n " rows
        }
    }' "$OUT/base.small" "$OUT/base.large" "$OUT/variant.small" "$OUT/variant.large"
