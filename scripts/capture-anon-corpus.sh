#!/usr/bin/env bash
# Captures a corpus of real anonymous memory for the codec benchmarks: starts a Python
# workload that builds ~350 MB of dicts, strings, lists and floats (what a swapped-out
# heap looks like), then copies its private writable memory (heap, stack, anonymous
# mappings: what the kernel would swap out) through /proc/PID/mem.
#
# Usage: scripts/capture-anon-corpus.sh [--if-missing] [OUT]
#   OUT defaults to $ZRAM_CORPUS, then /tmp/znbd-anon.bin. With --if-missing an existing
#   corpus is kept. Concurrent callers take turns (flock on OUT.lock), and OUT appears
#   only once complete (renamed into place), so a reader never sees part of it.
# Needs ptrace rights over its own child (root, or ptrace_scope 0).
set -euo pipefail

if_missing=false
if [[ "${1:-}" == "--if-missing" ]]; then
    if_missing=true
    shift
fi
out="${1:-${ZRAM_CORPUS:-/tmp/znbd-anon.bin}}"
exec 9>>"$out.lock"
flock 9
if $if_missing && [[ -s "$out" ]]; then exit 0; fi
partial="$out.partial.$$"

ready="$(mktemp)"
rm -f "$ready"
python3 - "$ready" 9>&- <<'PY' &
import random, sys, time

random.seed(20261125)
words = ("alpha beta gamma delta kernel page swap memory stream python object list dict "
         "string value index record customer order status pending shipped invoice").split()
records = [
    {"id": i, "name": f"user{i:07d}", "email": f"user{i}@example.org",
     "score": random.random() * 100, "tags": random.sample(words, 3), "active": i % 3 == 0}
    for i in range(280_000)
]
by_name = {r["name"]: r for r in records}
sentences = [" ".join(random.choices(words, k=12)) for _ in range(250_000)]
numbers = list(range(2_000_000))
floats = [random.random() for _ in range(1_000_000)]
pairs = [(i, str(i) * 3) for i in range(500_000)]
blobs = [bytes(random.getrandbits(8) for _ in range(64)) for _ in range(20_000)]
with open(sys.argv[1], "w") as f:
    f.write("ready\n")
time.sleep(600)
PY
workload=$!
# SIGKILL: a parent (Foundation's Process) may have left SIGTERM blocked in its children.
trap 'kill -KILL "$workload" 2>/dev/null || true; rm -f "$ready" "$partial"' EXIT

for _ in $(seq 600); do
    [[ -s "$ready" ]] && break
    kill -0 "$workload" 2>/dev/null || { echo "capture-anon-corpus: workload died" >&2; exit 1; }
    sleep 0.2
done
[[ -s "$ready" ]] || { echo "capture-anon-corpus: workload never became ready" >&2; exit 1; }

bytes="$(python3 - "$workload" "$partial" <<'PY'
import sys

pid, out_path = sys.argv[1], sys.argv[2]
written = 0
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem, open(out_path, "wb") as out:
    for line in maps:
        address, perms, *rest = line.split()
        name = rest[3] if len(rest) > 3 else ""
        # private writable memory without a backing file: what would go to swap
        if not perms.startswith("rw") or perms[3] != "p" or name not in ("", "[heap]", "[stack]"):
            continue
        start, end = (int(part, 16) for part in address.split("-"))
        try:
            mem.seek(start)
            chunk = mem.read(end - start)
        except OSError:
            continue  # guard pages and the like
        out.write(chunk)
        written += len(chunk)
print(written)
PY
)"
mv -f "$partial" "$out"
echo "capture-anon-corpus: wrote $bytes bytes of anonymous memory from PID $workload to $out" >&2
