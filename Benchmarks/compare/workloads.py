"""fio workloads over NBD, parsed from fio's JSON output."""
import json
import subprocess

# (label, fio rw, block size, queue depth)
WORKLOADS = [
    # First, on the layout the sequential fill left; the last row reads after the random writes.
    ("1M read QD4 (as filled)", "read", "1M", 4),
    ("4k randwrite QD1", "randwrite", "4k", 1),
    ("4k randread QD1", "randread", "4k", 1),
    ("4k randwrite QD32", "randwrite", "4k", 32),
    ("4k randread QD32", "randread", "4k", 32),
    ("1M write QD4", "write", "1M", 4),
    ("1M read QD4", "read", "1M", 4),
]


def fio(uri, rw, bs, iodepth, size, runtime, compress=60, extra=()):
    """Runs one fio job against `uri`; returns (iops, MB/s, p50 µs, p99 µs, bytes moved)."""
    args = [
        "fio", "--name=bench", "--ioengine=nbd", f"--uri={uri}", f"--rw={rw}", f"--bs={bs}",
        f"--iodepth={iodepth}", f"--size={size}", "--output-format=json",
        f"--buffer_compress_percentage={compress}", "--refill_buffers", "--randrepeat=0",
    ]
    if runtime:
        args += ["--time_based", f"--runtime={runtime}", "--ramp_time=1"]
    args += list(extra)
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    side = job["read"] if rw in ("read", "randread") else job["write"]
    pct = side.get("clat_ns", {}).get("percentile", {})
    return {
        "iops": side["iops"],
        "mbps": side["bw_bytes"] / 1e6,
        "p50_us": pct.get("50.000000", 0) / 1000,
        "p99_us": pct.get("99.000000", 0) / 1000,
        "bytes": side["io_bytes"],
    }


def prefill(uri, size, compress=60):
    """Writes the whole region once so that reads return stored data."""
    fio(uri, "write", "1M", 4, size, 0, compress)
