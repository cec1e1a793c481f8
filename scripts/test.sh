#!/usr/bin/env bash
# The README's test command. Installs the servers the tests start when they are missing
# (Debian's `prometheus` package for promtool and the Prometheus server,
# `prometheus-alertmanager` for Alertmanager, `influxdb` for InfluxDB 1.x, `chromium` and
# `chromium-driver` for the status page's browser tests), then runs `cargo test --workspace` with any extra arguments given here, e.g.
# `bash scripts/test.sh --test axum`.
#
# A test whose server is missing fails with the install instruction. VITALSIGN_SKIP_EXTERNAL=1
# skips those tests instead (nothing is installed then), and the run ends by saying how many
# checks were skipped: such a run is not a full pass.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${VITALSIGN_SKIP_EXTERNAL:-}" != 1 ]; then
    missing=()
    if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
        missing+=(prometheus)
    fi
    command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
    command -v influxd >/dev/null || missing+=(influxdb)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    if [ ${#missing[@]} -gt 0 ]; then
        install=(apt-get install -y -qq --no-install-recommends "${missing[@]}")
        if [ "$(id -u)" = 0 ]; then
            echo "scripts/test.sh: installing ${missing[*]} (Debian packages)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive "${install[@]}"
        elif command -v sudo >/dev/null && [ -t 0 ]; then
            echo "scripts/test.sh: installing ${missing[*]} (Debian packages) with sudo"
            sudo apt-get update -qq
            sudo DEBIAN_FRONTEND=noninteractive "${install[@]}"
        else
            cat >&2 <<EOF
scripts/test.sh: the tests start servers from the Debian packages ${missing[*]}, which are
not installed. Install them as root:

    apt-get update && apt-get install -y ${missing[*]}

or skip the tests that need them (the run then counts what it skipped):

    VITALSIGN_SKIP_EXTERNAL=1 bash scripts/test.sh
EOF
            exit 1
        fi
    fi
fi

# Each test that skips its server appends a line here (tests/common/mod.rs, `require`).
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
VITALSIGN_SKIP_LOG="$(mktemp "$(cd "$target_dir" && pwd)/vitalsign-skipped.XXXXXX")"
export VITALSIGN_SKIP_LOG
trap 'rm -f "$VITALSIGN_SKIP_LOG"' EXIT

status=0
cargo test --workspace "$@" || status=$?

if [ -s "$VITALSIGN_SKIP_LOG" ]; then
    checks=$(wc -l <"$VITALSIGN_SKIP_LOG")
    tests=$(cut -f2 "$VITALSIGN_SKIP_LOG" | sort -u | wc -l)
    echo
    echo "########################################################################"
    echo "Skipped for want of their external server (VITALSIGN_SKIP_EXTERNAL=1):"
    sort "$VITALSIGN_SKIP_LOG" | uniq -c | sed 's/^ */    /'
    echo "Install Debian's prometheus, prometheus-alertmanager, influxdb, chromium and"
    echo "chromium-driver packages and"
    echo "run again without VITALSIGN_SKIP_EXTERNAL for a full pass."
    plural() { [ "$1" = 1 ] && echo "$1 $2" || echo "$1 ${2}s"; }
    echo "SKIPPED: $(plural "$checks" check) in $(plural "$tests" test) did not run."
    echo "########################################################################"
fi
exit "$status"
