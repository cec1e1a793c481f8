# Shared by scripts/bench-instructions.sh and scripts/bench-profile.sh (sourced, not run):
# builds `benches/compare.rs` once and runs one of its variants under callgrind.
#
#   SMALL, LARGE   request counts of the two runs whose difference cancels set-up out
#   BIN            the bench binary
#   OUT            a scratch directory, removed on exit
#   callgrind PART VARIANT N   runs the variant over N requests; prints the path of the
#                  callgrind file of the thread that serves them (remove it when done)
SMALL="${SMALL:-500}"
LARGE="${LARGE:-2500}"
command -v valgrind >/dev/null || { echo "$(basename "$0"): valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
cargo bench -p vitalsign-benches --bench compare --no-run >&2
BIN=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/compare-* | grep -v '\.d$' | head -1)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

callgrind() {
    rm -f "$OUT"/cg.*
    VITALSIGN_BENCH_ONLY="$1" VITALSIGN_BENCH_VARIANT="$2" VITALSIGN_BENCH_N="$3" \
        valgrind --tool=callgrind --separate-threads=yes --toggle-collect="compare::drive_*" --toggle-collect="compare::grpc::drive_*" --callgrind-out-file="$OUT/cg.%p" \
        "$BIN" --bench >/dev/null 2>&1
    ls "$OUT"/cg.*-01 | head -1
}
