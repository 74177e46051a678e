#!/usr/bin/env bash
# Fuzz every decoder for a bounded time (issue 10): builds the cargo-fuzz targets of fuzz/ and
# runs each for FUZZ_SECONDS, printing per target the executions and whether it crashed. Exits
# non-zero when any target crashed (or failed to build or run). `make fuzz` runs this.
#
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_TARGETS    space-separated targets to run (default: all, `cargo fuzz list`)
#   FUZZ_SANITIZER  address (default) or none (faster builds and runs, finds panics only)
#   FUZZ_ARGS       extra libFuzzer arguments, e.g. "-rss_limit_mb=4096"
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer, sanitizer coverage); on the stable
# toolchain RUSTC_BOOTSTRAP=1 allows them. Seeds are read from fuzz/corpus/<target> (in git);
# what the fuzzer finds goes to fuzz/target/corpus/<target> (kept between runs, not in git) and
# crash inputs to fuzz/artifacts/<target>/ (not in git). See fuzz/README.md.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
read -r -a extra <<<"${FUZZ_ARGS:-}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi

flags=(-O --sanitizer "$sanitizer")
echo "building ${#targets[@]} fuzz targets (sanitizer: $sanitizer; the first build takes long)"
for target in "${targets[@]}"; do
    cargo fuzz build "${flags[@]}" "$target"
done

logs="$root/fuzz/target/fuzz-logs"
mkdir -p "$logs"
summary=()
failed=0
for target in "${targets[@]}"; do
    work="$root/fuzz/target/corpus/$target"
    seeds="$root/fuzz/corpus/$target"
    mkdir -p "$work" "$seeds"
    log="$logs/$target.log"
    echo "fuzzing $target for ${seconds}s (log: ${log#"$root/"})"
    # Dictionaries of fuzz/dicts: JSON tokens for the JSON decoders, header tokens for requests.
    dict=()
    case "$target" in
    audit_log | audit_page | json_messages) dict=(-dict="$root/fuzz/dicts/json.dict") ;;
    *) if [[ -f "$root/fuzz/dicts/$target.dict" ]]; then
        dict=(-dict="$root/fuzz/dicts/$target.dict")
    fi ;;
    esac
    status=0
    # -timeout: one input running this long counts as a crash (a hang); an Argon2id seed of
    # the sealed target takes about a second, the largest photo a few.
    cargo fuzz run "${flags[@]}" "$target" "$work" "$seeds" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 "${dict[@]}" "${extra[@]}" \
        >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    if [[ -z "$runs" ]]; then
        runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)"
    fi
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
    if [[ "$status" -eq 0 ]]; then
        result="no crash"
    else
        failed=1
        result="CRASH (exit $status)${artifact:+: $artifact}"
        grep -m 3 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY" "$log" || true
    fi
    line="$(printf '%-18s %8s runs %7s exec/s  %s' "$target" "${runs:-?}" "${rate:-?}" "$result")"
    echo "$line"
    summary+=("$line")
done

echo
echo "fuzzing summary (${seconds}s per target, sanitizer: $sanitizer):"
printf '  %s\n' "${summary[@]}"
if [[ "$failed" -ne 0 ]]; then
    echo "at least one target crashed: minimise with 'cargo fuzz tmin -O <target> <artifact>'" \
        "(RUSTC_BOOTSTRAP=1) and add it as a regression test (fuzz/README.md)" >&2
    exit 1
fi
