#!/usr/bin/env python3
"""One-command comparison of znbd with its peers, printed as Markdown.

    Benchmarks/compare/compare.py [--quick] [--runs N] [--out DIR]

Throughput and latency: fio ioengine=nbd over Unix sockets against znbd (lz4),
nbdkit memory (sparse and zstd), nbdkit null (the transport ceiling) and
nbd-server on tmpfs, in one run; medians of --runs runs; ratios against the
peers. Memory: the same real anonymous-memory capture stored in znbd with every
algorithm, in the kernel's zram0 with every algorithm it offers, and in nbdkit's
zstd allocator (by RSS). Needs root for zram0; scripts/install-deps.sh installs
the peers.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402
import workloads  # noqa: E402
import memory  # noqa: E402
import charts  # noqa: E402
import scale  # noqa: E402
import report  # noqa: E402
from report import emit  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def build_znbd():
    subprocess.run(["swift", "build", "-c", "release", "--product", "znbd"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(ROOT, ".build", "release", "znbd")


def throughput(binary, workdir, runs, runtime, size):
    peers = [
        lambda: servers.Znbd(workdir, size, binary, "lz4"),
        lambda: servers.nbdkit_sparse(workdir, size),
        lambda: servers.nbdkit_zstd(workdir, size),
        lambda: servers.nbdkit_null(workdir, size),
        lambda: servers.NbdServerTmpfs(workdir, size),
    ]
    results = {}  # (server, workload) -> list of runs
    cpu = {}  # server -> {"write": s/GiB, "read": s/GiB}
    for make in peers:
        for run in range(runs):
            with make() as server:
                workloads.prefill(server.uri, size)
                for label, rw, bs, qd in workloads.WORKLOADS:
                    before = servers.cpu_seconds(server.pid)
                    r = workloads.fio(server.uri, rw, bs, qd, size, runtime)
                    r["cpu_per_gib"] = (servers.cpu_seconds(server.pid) - before) / max(r["bytes"] / 2**30, 1e-9)
                    results.setdefault((server.name, label), []).append(r)
                    print(f"  {server.name:18} {label:18} run {run + 1}: {r['iops']:10.0f} IOPS "
                          f"{r['mbps']:8.1f} MB/s", file=sys.stderr)
    names = [make().name for make in peers]
    return names, results


def median(values):
    return statistics.median(values) if values else 0.0


def print_throughput(names, results):
    emit("## Throughput: fio ioengine=nbd, Unix socket, 60 % compressible data\n")
    emit("IOPS (median of runs); MB/s for 1M rows.\n")
    emit("| workload | " + " | ".join(names) + " | znbd / sparse | znbd / zstd | znbd / null |")
    emit("|---|" + "---|" * (len(names) + 3))
    for label, *_ in workloads.WORKLOADS:
        key = "mbps" if label.startswith("1M") else "iops"
        values = [median([r[key] for r in results.get((n, label), [])]) for n in names]
        zn, sparse, zstd, null = values[0], values[1], values[2], values[3]
        cells = [f"{v:,.0f}" for v in values]
        ratios = [f"{zn / d:.2f}x" if d else "n/a" for d in (sparse, zstd, null)]
        emit(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    emit("\nQD1 latency, µs (p50 / p99):\n")
    emit("| workload | " + " | ".join(names) + " |")
    emit("|---|" + "---|" * len(names))
    for label, *_ in workloads.WORKLOADS[:2]:
        cells = []
        for n in names:
            runs = results.get((n, label), [])
            cells.append(f"{median([r['p50_us'] for r in runs]):.1f} / {median([r['p99_us'] for r in runs]):.1f}")
        emit(f"| {label} | " + " | ".join(cells) + " |")
    emit("\nServer CPU seconds per GiB moved (1M sequential):\n")
    emit("| direction | " + " | ".join(names) + " |")
    emit("|---|" + "---|" * len(names))
    for label in ("1M write QD4", "1M read QD4"):
        cells = [f"{median([r['cpu_per_gib'] for r in results.get((n, label), [])]):.2f}" for n in names]
        emit(f"| {label} | " + " | ".join(cells) + " |")
    emit()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run of 3 s per workload")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runtime", type=int, default=8, help="seconds per fio job")
    parser.add_argument("--size", default=str(512 << 20), help="bytes of device each job covers")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "compare", "results"),
                        help="where report.md and the PNG charts go")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.runtime = 1, 3

    binary = build_znbd()
    emit(f"# znbd vs peers — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB\n")
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="znbd-compare-") as workdir:
        if not args.skip_memory:
            rows = memory.report(binary, workdir, ROOT)
            charts.memory_chart(os.path.join(args.out, "memory.png"),
                                [(f"{store} {alg}", total or rss) for store, alg, _, _, total, rss in rows])
            emit("![memory by store and algorithm](memory.png)\n")
        if not args.skip_throughput:
            names, results = throughput(binary, workdir, args.runs, args.runtime, int(args.size))
            print_throughput(names, results)
            labels = [w[0] for w in workloads.WORKLOADS]
            values = {label: {n: median([r["mbps" if label.startswith("1M") else "iops"]
                                         for r in results.get((n, label), [])]) for n in names} for label in labels}
            charts.throughput_chart(os.path.join(args.out, "throughput.png"), names, labels, values)
            emit("![throughput by peer](throughput.png)\n")
        if not args.skip_scale:
            scale.report(binary, workdir)
    report.write(os.path.join(args.out, "report.md"))
    print(f"wrote {args.out}/report.md and charts", file=sys.stderr)


if __name__ == "__main__":
    main()
