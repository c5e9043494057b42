#!/usr/bin/env bash
# Recompression's saving per algorithm pair on the anonymous-memory corpus
# (scripts/capture-anon-corpus.sh): for each "PRIMARY SECONDARY" pair, a znbd device
# configured with `compression-algorithm = PRIMARY SECONDARY` stores the whole corpus,
# then `recompress` (every page) runs, then `compact`. Prints compr_data_size and
# mem_used_total (MiB) before, after recompression and after compaction, pages
# recompressed and the seconds recompression took.
#
# Usage: scripts/recompression-savings.sh ["lz4 zstd" "lz4 lz4hc" ...]
#   ZNBD: the znbd binary (default .build/release/znbd, else .build/debug/znbd)
#   ZRAM_CORPUS: the corpus (default /tmp/znbd-anon.bin; captured if missing)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
znbd="${ZNBD:-$root/.build/release/znbd}"
[ -x "$znbd" ] || znbd="$root/.build/debug/znbd"
corpus="${ZRAM_CORPUS:-/tmp/znbd-anon.bin}"
"$root/scripts/capture-anon-corpus.sh" --if-missing "$corpus"
command -v nbdcopy >/dev/null || { echo "nbdcopy is missing (Debian: libnbd-bin)" >&2; exit 1; }

pairs=("$@")
[ ${#pairs[@]} -gt 0 ] || pairs=("lz4 zstd" "lz4 zstd(level=3)" "lz4 lz4hc" "lzo zstd")

dir="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
mib=$(( $(stat -c %s "$corpus") / 1048576 + 1 ))

field() { awk -v n="$2" '{ printf "%.1f", $n / 1048576 }' <<<"$1"; }

echo "corpus: $corpus ($(( $(stat -c %s "$corpus") / 4096 )) pages)"
printf '| %-20s | %-26s | %-26s | %-26s | %9s | %7s |\n' pair \
    "compr_data_size MiB" "mem_used_total MiB" "after compact MiB" "pages" "seconds"
printf '| %-20s | %-26s | %-26s | %-26s | %9s | %7s |\n' "" "before → after" "before → after" "mem_used_total" "recompr." ""
for pair in "${pairs[@]}"; do
    printf '[zram0]\nzram-size = %d\ncompression-algorithm = %s\n' "$mib" "$pair" >"$dir/znbd.conf"
    "$znbd" serve --config "$dir/znbd.conf" --unix "$dir/nbd.sock" --control "$dir/ctl" --no-fuse --no-mlock \
        2>"$dir/serve.log" &
    pid=$!
    for _ in $(seq 100); do
        "$znbd" get zram0 initstate --control "$dir/ctl" >/dev/null 2>&1 && break
        sleep 0.1
    done
    ctl() { "$znbd" "$@" --control "$dir/ctl"; }
    nbdcopy "$corpus" "nbd+unix:///zram0?socket=$dir/nbd.sock"
    before="$(ctl get zram0 mm_stat)"
    start=$(date +%s.%N)
    ctl set zram0 recompress ""
    seconds=$(echo "$(date +%s.%N) - $start" | bc)
    after="$(ctl get zram0 mm_stat)"
    pages="$(ctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"][0]["recompression"]["pages"])')"
    ctl set zram0 compact 1
    compacted="$(ctl get zram0 mm_stat)"
    printf '| %-20s | %10s → %-11s | %10s → %-11s | %-26s | %9s | %7.1f |\n' "$pair" \
        "$(field "$before" 2)" "$(field "$after" 2)" "$(field "$before" 3)" "$(field "$after" 3)" \
        "$(field "$compacted" 3)" "$pages" "$seconds"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
done
