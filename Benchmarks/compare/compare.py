#!/usr/bin/env python3
"""One-command comparison of znbd with its peers, printed as Markdown.

    Benchmarks/compare/compare.py [--quick] [--runs N] [--rows "1M write QD4,1M read QD4"] [--out DIR]

Throughput and latency: fio ioengine=nbd over Unix sockets against znbd (lz4),
nbdkit memory (sparse and zstd), nbdkit null (the transport ceiling) and
nbd-server on tmpfs, in one run; medians of --runs runs; ratios against the
peers. Memory: the same real anonymous-memory capture stored in znbd with every
algorithm, in the kernel's zram0 with every algorithm it offers, and in nbdkit's
zstd allocator (by RSS). Needs root for zram0; scripts/install-deps.sh installs
the peers. Writes throughput.json, memory.md, scale.md and the charts to --out, then
assembles report.md with the other parts of the benchmark report (report.py).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402
import workloads  # noqa: E402
import memory  # noqa: E402
import charts  # noqa: E402
import scale  # noqa: E402
import machine  # noqa: E402
import report  # noqa: E402
import section  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def build_znbd():
    subprocess.run(["swift", "build", "-c", "release", "--product", "znbd"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(ROOT, ".build", "release", "znbd")


def throughput(binary, workdir, runs, runtime, size, about, rows=None):
    """label -> server -> list of runs, for the workloads named in rows (all when None)."""
    peers = [
        lambda: servers.Znbd(workdir, size, binary, "lz4"),
        lambda: servers.nbdkit_sparse(workdir, size),
        lambda: servers.nbdkit_zstd(workdir, size),
        lambda: servers.nbdkit_null(workdir, size),
        lambda: servers.NbdServerTmpfs(workdir, size),
    ]
    chosen = [w for w in workloads.WORKLOADS if rows is None or w[0] in rows]
    results = {}
    for run in range(runs):  # runs interleaved across peers, so that a change in load hits them alike
        machine.wait_while_realtime()
        for make in peers:
            with make() as server:
                workloads.prefill(server.uri, size)
                for label, rw, bs, qd in chosen:
                    before = servers.cpu_seconds(server.pid)
                    r = workloads.fio(server.uri, rw, bs, qd, size, runtime)
                    r["cpu_per_gib"] = (servers.cpu_seconds(server.pid) - before) / max(r["bytes"] / 2**30, 1e-9)
                    results.setdefault(label, {}).setdefault(server.name, []).append(r)
                    print(f"  {server.name:18} {label:18} run {run + 1}: {r['iops']:10.0f} IOPS "
                          f"{r['mbps']:8.1f} MB/s", file=sys.stderr)
        machine.sample(about)
    names = [make().name for make in peers]
    return names, results


def median(values):
    return statistics.median(values) if values else 0.0


def measure_throughput(binary, workdir, args, rows):
    """Measures and merges into throughput.json (with rows, the other rows are kept)."""
    about = machine.describe()
    names, results = throughput(binary, workdir, args.runs, args.runtime, int(args.size), about, rows)
    path = os.path.join(args.out, "throughput.json")
    data = {"rows": {}}
    if rows is not None and os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data["names"] = names
    for label, runs in results.items():
        data["rows"][label] = {"machine": about, "runs": runs, "settings": {"runs": args.runs, "runtime_s": args.runtime,
                                                                              "interleaved": True}}
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
    return data


def cell(data, label, name, key):
    return median([r[key] for r in data["rows"].get(label, {}).get("runs", {}).get(name, [])])


def render_throughput(data, chart=None):
    names = data["names"]
    order = [w[0] for w in workloads.WORKLOADS if w[0] in data["rows"]]
    lines = ["## Throughput: fio ioengine=nbd, Unix socket, 60 % compressible data\n"]
    lines.append("`Benchmarks/compare/compare.py` (the report's `--peers`): every peer in the same run, each run a "
                 "fresh server with the 512 MiB region written once first (1 MiB sequential writes). The rows run "
                 "in this order on that one device: the first 1 MiB read finds the layout the fill left, the last "
                 "one finds the pages the random writes scattered.\n")
    seen = {}
    for label in order:
        m = data["rows"][label]["machine"]
        seen.setdefault((m["date"], m["commit"]), (m, data["rows"][label]["settings"], []))[2].append(label)
    for m, settings, labels in seen.values():
        which = "" if len(seen) == 1 else " (" + ", ".join(labels) + ")"
        order_note = ("each round runs every peer in turn" if settings.get("interleaved")
                      else "each peer's runs one after another")
        lines.append(f"- Measured{which}: {machine.summary(m)}; medians of {settings['runs']} runs × "
                     f"{settings['runtime_s']} s, {order_note}.")
    lines.append("")
    lines.append("IOPS (median of runs); MB/s for 1M rows.\n")
    lines.append("| workload | " + " | ".join(names) + " | znbd / sparse | znbd / zstd | znbd / null |")
    lines.append("|---|" + "---|" * (len(names) + 3))
    for label in order:
        key = "mbps" if label.startswith("1M") else "iops"
        values = [cell(data, label, n, key) for n in names]
        zn, sparse, zstd, null = values[0], values[1], values[2], values[3]
        cells = [f"{v:,.0f}" for v in values]
        ratios = [f"{zn / d:.2f}x" if d else "n/a" for d in (sparse, zstd, null)]
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    qd1 = [label for label in order if label.endswith("QD1")]
    if qd1:
        lines.append("\nQD1 latency, µs (p50 / p99):\n")
        lines.append("| workload | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for label in qd1:
            cells = [f"{cell(data, label, n, 'p50_us'):.1f} / {cell(data, label, n, 'p99_us'):.1f}" for n in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    sequential = [label for label in order if label.startswith("1M")]
    if sequential:
        lines.append("\nServer CPU seconds per GiB moved (1M sequential):\n")
        lines.append("| direction | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for label in sequential:
            lines.append(f"| {label} | " + " | ".join(f"{cell(data, label, n, 'cpu_per_gib'):.2f}" for n in names) + " |")
    targets = []
    for label, peer, goal in TARGETS:
        if label in data["rows"]:
            key = "mbps" if label.startswith("1M") else "iops"
            ours, theirs = cell(data, label, names[0], key), cell(data, label, peer, key)
            ratio = ours / theirs if theirs else 0
            targets.append(f"- {label}: {ratio:.2f}x {peer} (target ≥ {goal}x: {'met' if ratio >= goal else 'missed'})")
    if targets:
        lines.append("\nIssue 13's targets over fio's nbd engine:\n")
        lines += targets
    lines.append("")
    if chart:
        lines.append(f"![throughput by peer]({chart})\n")
    return "\n".join(lines)


TARGETS = [
    ("1M read QD4", "nbdkit sparse", 1.0),
    ("1M write QD4", "nbdkit sparse", 0.75),
    ("1M write QD4", "nbdkit zstd", 4.0),
    ("4k randwrite QD32", "nbdkit sparse", 1.0),
    ("4k randread QD32", "nbdkit sparse", 1.0),
    ("4k randwrite QD1", "nbdkit zstd", 4.0),
]


def throughput_chart(data, out):
    names = data["names"]
    labels = [w[0] for w in workloads.WORKLOADS if w[0] in data["rows"]]
    values = {label: {n: cell(data, label, n, "mbps" if label.startswith("1M") else "iops") for n in names}
              for label in labels}
    charts.throughput_chart(os.path.join(out, "throughput.png"), names, labels, values)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run of 3 s per workload")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runtime", type=int, default=8, help="seconds per fio job")
    parser.add_argument("--size", default=str(512 << 20), help="bytes of device each job covers")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--rows", help="comma-separated workload labels to measure again, keeping the others "
                        "(implies --skip-memory --skip-scale)")
    parser.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "compare", "results"),
                        help="where the results, report.md and the PNG charts go")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.runtime = 1, 3
    run(args)
    report.assemble(args.out)
    print(f"wrote {args.out}/report.md and charts", file=sys.stderr)


def run(args):
    """Measures the peers' parts of the report into args.out."""
    rows = None if not args.rows else [r.strip() for r in args.rows.split(",")]
    if rows is not None:
        args.skip_memory = args.skip_scale = True
    binary = build_znbd()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="znbd-compare-") as workdir:
        if not args.skip_memory:
            section.take()
            about = machine.describe()
            rows_memory = memory.report(binary, workdir, ROOT)
            machine.sample(about)
            charts.memory_chart(os.path.join(args.out, "memory.png"),
                                [(f"{store} {alg}", total or rss) for store, alg, _, _, total, rss in rows_memory])
            section.emit("![memory by store and algorithm](memory.png)\n")
            save_section(os.path.join(args.out, "memory.md"), section.take(), about)
        if not args.skip_throughput:
            data = measure_throughput(binary, workdir, args, rows)
            throughput_chart(data, args.out)
            print(render_throughput(data, "throughput.png"))
        if not args.skip_scale:
            section.take()
            about = machine.describe()
            scale.report(binary, workdir)
            machine.sample(about)
            save_section(os.path.join(args.out, "scale.md"), section.take(), about)


def save_section(path, text, about):
    """A section that memory.py or scale.py printed, with the machine named under its heading."""
    heading, _, body = text.partition("\n")
    with open(path, "w") as f:
        f.write(f"{heading}\n\nMeasured: {machine.summary(about)}.\n{body}")

if __name__ == "__main__":
    main()
