#!/usr/bin/env bash
# Zero heap allocations per request in steady state: runs the package-benchmark suites
# (store and protocol paths, every thread counted) and checks them against the static
# mallocCountTotal thresholds in Benchmarks/Thresholds (all 0). Exits non-zero on a violation.
#
# Usage: scripts/check-allocations.sh [extra benchmark options, e.g. --target ProtocolBenchmarks]
# StoreBenchmarks reads real anonymous memory from $ZRAM_CORPUS (default /tmp/znbd-anon.bin),
# captured by scripts/capture-anon-corpus.sh when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../Benchmarks"
exec swift package --allow-writing-to-package-directory benchmark thresholds check \
    --path Thresholds --no-progress "$@"
