"""The physical limit: one core's LZ4 speed on the benchmarks' own 4 KiB pages (fio's 60 %
compressible buffers), times the cores, in 4 KiB pages per second."""
import json
import os
import subprocess
import sys

import machine

HERE = os.path.dirname(os.path.abspath(__file__))


def pages_file(workdir, size="64M"):
    """The pages the benchmarks write: fio with the same buffer options, to a plain file."""
    path = os.path.join(workdir, "pages.bin")
    subprocess.run(["fio", "--name=pages", f"--filename={path}", "--rw=write", "--bs=4k", f"--size={size}",
                    "--buffer_compress_percentage=60", "--refill_buffers", "--output-format=terse"],
                   check=True, capture_output=True)
    return path


def measure(workdir, passes=9):
    binary = os.path.join(workdir, "lz4_pages")
    subprocess.run(["cc", "-O2", "-o", binary, os.path.join(HERE, "lz4_pages.c"), "-llz4"], check=True)
    about = machine.describe()
    out = subprocess.run([binary, pages_file(workdir), str(passes)], check=True, capture_output=True, text=True).stdout
    machine.sample(about)
    result = json.loads(out)
    pages = result["pages"]
    best_compress = min(p["compress_s"] for p in result["passes"])
    best_decompress = min(p["decompress_s"] for p in result["passes"])
    data = {
        "machine": about,
        "raw": result,
        "ratio": pages * 4096 / result["compressed_bytes"],
        "compress_pages_per_core": pages / best_compress,
        "decompress_pages_per_core": pages / best_decompress,
    }
    data["compress_pages"] = data["compress_pages_per_core"] * about["cores"]
    data["decompress_pages"] = data["decompress_pages_per_core"] * about["cores"]
    print(f"  lz4 per core: compress {data['compress_pages_per_core']:,.0f} pages/s, "
          f"decompress {data['decompress_pages_per_core']:,.0f} pages/s", file=sys.stderr)
    return data


def render(data):
    m = data["machine"]
    c, d = data["compress_pages_per_core"], data["decompress_pages_per_core"]
    n = m["cores"]
    return "\n".join([
        "## The physical limit: LZ4 on these pages\n",
        f"{machine.summary(m)}.\n",
        f"One core compressing each of {data['raw']['pages']:,} of the benchmarks' own 4 KiB pages (fio, 60 % "
        f"compressible, ratio {data['ratio']:.2f}) alone with `LZ4_compress_fast_extState` (the call the kernel's "
        f"lz4 backend and SwiftZram make), and decompressing each alone with `LZ4_decompress_safe` "
        f"(`Benchmarks/compare/lz4_pages.c`; the thread's CPU time, best of {len(data['raw']['passes'])} passes, "
        f"so that the other work on the machine does not count):\n",
        "| | per core | × " + str(n) + " cores | as 4 KiB IOPS | as MB/s |",
        "|---|---|---|---|---|",
        f"| compress | {c:,.0f} pages/s | {c * n:,.0f} pages/s | {c * n / 1000:.0f}k | {c * n * 4096 / 1e6:,.0f} |",
        f"| decompress | {d:,.0f} pages/s | {d * n:,.0f} pages/s | {d * n / 1000:.0f}k | {d * n * 4096 / 1e6:,.0f} |",
        "",
        "No compressed RAM device on this machine can store pages faster than the compress row or load them faster "
        "than the decompress row, with every core doing nothing else; the fio client, the transport and the "
        "kernel's block layer share the same cores.\n",
    ])
