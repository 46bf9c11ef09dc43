#!/usr/bin/env bash
# Smoke-fuzzes every cargo-fuzz target in fuzz/ for a bounded time and fails on any
# crash, hang or out-of-memory. Also replays the committed crash regressions and
# seed corpora on stable Rust first (fuzz/tests/regressions.rs).
#
# Usage: scripts/fuzz-smoke.sh [target...]      (default: every target)
# Environment:
#   FUZZ_SECS        seconds per target (default 10)
#   FUZZ_TARGET_DIR  cargo target dir for the fuzz builds (default fuzz/target)
#   FUZZ_SANITIZER   address (default) | none  (none runs ~3x faster, finds less)
#   FUZZ_RUNS        if set, run each target until it has executed this many inputs
#                    (libFuzzer -runs) instead of for FUZZ_SECS; `make fuzz-long`
#                    sets 1000000
#   FUZZ_CORPUS_DIR  where the working corpus lives (default fuzz/corpus); `make
#                    fuzz-long` keeps it in the cache directory, so a campaign grows
#                    on the last one's corpus and nothing of it lands in git
#
# Needs: rustup with a nightly toolchain (installed here if missing) and
# cargo-fuzz (installed with `cargo install` if missing). The fuzz targets never boot a
# guest, so the core crate embeds an empty micro-guest ELF instead of building it.
# The working corpus grows in fuzz/corpus/<target> and crash inputs land in
# fuzz/artifacts/<target>/ (both gitignored); copy a fixed crash into
# fuzz/regressions/<target>/ so `cargo test` keeps it fixed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${FUZZ_SECS:-10}
target_dir=${FUZZ_TARGET_DIR:-$root/fuzz/target}
sanitizer=${FUZZ_SANITIZER:-address}
runs=${FUZZ_RUNS:-}
corpus_root=${FUZZ_CORPUS_DIR:-$root/fuzz/corpus}
if [ -n "$runs" ]; then
    limit=(-runs="$runs")
    # A long campaign is bounded by its execution count; the time limit is a backstop.
    limit+=(-max_total_time="${FUZZ_MAX_SECS:-3600}")
else
    limit=(-max_total_time="$secs")
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

mkdir -p "$target_dir"
: > "$target_dir/empty-micro.elf"
export KVMSANDBOX_MICRO_ELF="$target_dir/empty-micro.elf"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

echo "fuzz-smoke: replaying regressions and seeds (stable)"
CARGO_TARGET_DIR="$target_dir/stable" cargo test --quiet --manifest-path fuzz/Cargo.toml

echo "fuzz-smoke: building ${targets[*]} (nightly, sanitizer=$sanitizer, debug assertions on)"
build=(cargo +nightly fuzz build --debug-assertions --sanitizer "$sanitizer" --target-dir "$target_dir")
if [ $# -eq 0 ]; then
    "${build[@]}"
else
    for t in "${targets[@]}"; do "${build[@]}" "$t"; done
fi
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"

failed=()
start=$(date +%s)
printf '%-16s %12s %8s %6s %6s %s\n' target executions exec/s cov secs result
for t in "${targets[@]}"; do
    corpus="$corpus_root/$t"
    artifacts="fuzz/artifacts/$t/"
    mkdir -p "$corpus" "$artifacts"
    log=$(mktemp)
    # -timeout: an input running 10 s is a hang; -rss_limit_mb: a guest must not
    # make us allocate without bound.
    set +e
    t0=$(date +%s)
    "$bin_dir/$t" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts" -print_final_stats=1 \
        "$corpus" "fuzz/corpus-seed/$t" >"$log" 2>&1
    rc=$?
    set -e
    done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | cut -d' ' -f2)
    took=$(( $(date +%s) - t0 ))
    if [ $rc -eq 0 ] && [ -n "$runs" ] && [ "${done_runs:-0}" -lt "$runs" ]; then
        printf '%-16s %12s %8s %6s %6s SHORT (stopped before %s executions)\n' "$t" "${done_runs:-?}" "${rate:-?}" "${cov:-?}" "$took" "$runs"
        failed+=("$t")
    elif [ $rc -eq 0 ]; then
        printf '%-16s %12s %8s %6s %6s ok\n' "$t" "${done_runs:-?}" "${rate:-?}" "${cov:-?}" "$took"
    else
        printf '%-16s %12s %8s %6s %6s CRASH (exit %d)\n' "$t" "${done_runs:-?}" "${rate:-?}" "${cov:-?}" "$took" "$rc"
        grep -E "panicked at|^thread '|ERROR: libFuzzer|SUMMARY|Test unit written" "$log" | head -n 12 | sed 's/^/    /'
        failed+=("$t")
    fi
    rm -f "$log"
done
echo "fuzz-smoke: fuzzed ${#targets[@]} targets in $(( $(date +%s) - start )) s"

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz-smoke: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/;" \
        "reproduce: cargo +nightly fuzz run <target> <input>)" >&2
    exit 1
fi
