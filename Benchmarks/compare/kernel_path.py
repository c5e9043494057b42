#!/usr/bin/env python3
"""The kernel path without the nbd driver: block-device throughput through each way of reaching
a compressed RAM device, measured with fio in one run, medians of several rounds.

  (a) kernel zram0 (lz4)
  (b) znbd attach: znbd's own FUSE export + loop (direct I/O), requests over io_uring (--fuse-ring on)
  (c) nbdfuse + loop (direct I/O) over znbd's NBD socket
  (d) nbdfuse + loop (direct I/O) over nbdkit memory allocator=sparse
  (e) znbd attach as (b), requests read from /dev/fuse by worker threads (--fuse-ring off)

fio: libaio, direct, 60 % compressible data; 4 KiB random writes and reads at QD32, 4 KiB
random writes at QD1, 1 MiB sequential writes and reads at QD4, over a region filled first (so
that reads decompress real pages). All four paths are set up at once and each round runs them in
turn, so a busy machine slows them alike. Also the page cache grown by writing 256 MiB through (b)
and (c). Needs root, /dev/fuse, loop devices, fio, nbdfuse, nbdkit and the zram module. Build
first: swift build -c release --product znbd

  sudo Benchmarks/compare/kernel_path.py [--rounds 3] [--runtime 10] [--rows "1M write QD4,1M read QD4"]

writes Benchmarks/compare/results/kernel_path.json (with --rows, only those rows are measured
again and the others kept) and prints the report section; Benchmarks/compare/report.py puts it
into the benchmark report.
"""
import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMON = ["--ioengine=libaio", "--direct=1", "--buffer_compress_percentage=60", "--refill_buffers",
          "--randrepeat=0", "--norandommap", "--output-format=json"]


def run(args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs).stdout


def wait_for(predicate, what, timeout=20):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


# (label, fio rw, block size, queue depth): labels as in workloads.WORKLOADS
WORKLOADS = [
    ("4k randwrite QD32", "randwrite", "4k", 32),
    ("4k randread QD32", "randread", "4k", 32),
    ("4k randwrite QD1", "randwrite", "4k", 1),
    ("1M write QD4", "write", "1M", 4),
    ("1M read QD4", "read", "1M", 4),
]


def fio(device, rw, bs, depth, size, runtime, cwd):
    args = ["fio", "--name=job", f"--filename={device}", f"--rw={rw}", f"--bs={bs}", f"--iodepth={depth}",
            f"--size={size}"] + COMMON
    if runtime:
        args += ["--time_based", f"--runtime={runtime}"]
    result = json.loads(run(args, cwd=cwd))["jobs"][0]
    side = result["write"] if "write" in rw else result["read"]
    percentile = side.get("clat_ns", {}).get("percentile", {})
    return {"iops": side["iops"], "mbps": side["bw_bytes"] / 1e6,
            "p50_us": percentile.get("50.000000", 0) / 1000, "p99_us": percentile.get("99.000000", 0) / 1000}


def cached_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Cached:"):
                return int(line.split()[1]) * 1024
    return 0


class Path:
    """One way to a block device; `start` returns the device, `stop` undoes everything."""

    def __init__(self, name, workdir, size):
        self.name, self.size = name, size
        self.dir = os.path.join(workdir, name.split(")")[0].strip("("))
        os.makedirs(self.dir, exist_ok=True)
        self.undo = []

    def spawn(self, args):
        proc = subprocess.Popen(args, stdout=open(os.path.join(self.dir, "log"), "a"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.undo.append(stop)
        return proc

    def loop_over(self, file):
        loop = run(["losetup", "-f", "--show", "--direct-io=on", file]).strip()
        self.undo.append(lambda: subprocess.run(["losetup", "-d", loop], capture_output=True))
        return loop

    def nbdfuse(self, uri):
        mount = os.path.join(self.dir, "nbdfuse")
        os.makedirs(mount, exist_ok=True)
        self.spawn(["nbdfuse", mount, uri])
        self.undo.append(lambda: subprocess.run(["fusermount3", "-u", mount], capture_output=True))
        wait_for(lambda: os.path.exists(mount + "/nbd"), "nbdfuse")
        return self.loop_over(mount + "/nbd")

    def znbd(self, extra):
        binary = os.path.join(ROOT, ".build/release/znbd")
        control = os.path.join(self.dir, "control.sock")
        socket = os.path.join(self.dir, "nbd.sock")
        self.spawn([binary, "serve", "--unix", socket, "--control", control, "--size", str(self.size)] + extra)
        wait_for(lambda: os.path.exists(control) and os.path.exists(socket), "znbd serve")
        return binary, control, socket

    def stop(self):
        while self.undo:
            try:
                self.undo.pop()()
            except Exception as error:  # keep undoing the rest
                print(f"{self.name}: cleanup: {error}", file=sys.stderr)


class KernelZram(Path):
    def start(self):
        if not os.path.exists("/sys/block/zram0"):
            run(["modprobe", "zram", "num_devices=1"])
        sysfs = "/sys/block/zram0/"
        with open(sysfs + "reset", "w") as f:
            f.write("1")
        with open(sysfs + "comp_algorithm", "w") as f:
            f.write("lz4")
        with open(sysfs + "disksize", "w") as f:
            f.write(str(self.size))

        def reset():
            with open(sysfs + "reset", "w") as f:
                f.write("1")
        self.undo.append(reset)
        return "/dev/zram0"


class ZnbdAttach(Path):
    ring = "on"

    def start(self):
        binary, control, _ = self.znbd(["--fuse-ring", self.ring])
        fuse_file = os.path.join(self.dir, "fuse", "zram0")
        wait_for(lambda: os.path.exists(fuse_file), "the FUSE export")
        loop = run([binary, "attach", "zram0", "--attach", "fuse", "--control", control]).strip()
        self.undo.append(lambda: subprocess.run([binary, "detach", "zram0", "--control", control], capture_output=True))
        return loop


class ZnbdAttachThreads(ZnbdAttach):
    ring = "off"


class ZnbdNbdfuse(Path):
    def start(self):
        _, _, socket = self.znbd(["--no-fuse"])
        return self.nbdfuse(f"nbd+unix:///zram0?socket={socket}")


class NbdkitSparse(Path):
    def start(self):
        socket = os.path.join(self.dir, "nbd.sock")
        self.spawn(["nbdkit", "-f", "--unix", socket, "memory", str(self.size), "allocator=sparse"])
        wait_for(lambda: os.path.exists(socket), "nbdkit")
        return self.nbdfuse(f"nbd+unix:///?socket={socket}")


def measure_all(paths, workloads, args, cwd, about):
    """Every path set up at once, rounds interleaved (each round runs every path in turn),
    so that a change in the machine's load hits all paths alike."""
    devices = {}
    try:
        for path in paths:
            devices[path.name] = path.start()
            fio(devices[path.name], "write", "1M", 8, args.region, 0, cwd)  # fill: reads decompress real pages
        results = {label: {path.name: [] for path in paths} for label, *_ in workloads}
        for round in range(args.rounds):
            machine.wait_while_realtime()
            print(f"round {round + 1} of {args.rounds}", file=sys.stderr)
            for label, rw, bs, depth in workloads:
                for path in paths:
                    r = fio(devices[path.name], rw, bs, depth, args.region, args.runtime, cwd)
                    results[label][path.name].append(r)
                    print(f"  {label:18} {path.name:44} {r['iops']:10.0f} IOPS {r['mbps']:8.1f} MB/s",
                          file=sys.stderr)
            machine.sample(about)
        return results
    finally:
        for path in reversed(paths):
            path.stop()


def page_cache_growth(path, cwd):
    """Writing 256 MiB: `Cached:` in /proc/meminfo before and after (machine-wide, so other
    processes' file I/O counts too), and the page cache of the loop device and its backing
    file alone (fincore), which is what the path itself leaves there."""
    device = path.start()
    try:
        subprocess.run(["sync"])
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
        before = cached_bytes()
        fio(device, "write", "1M", 8, "256M", 0, cwd)
        grown = cached_bytes() - before
        name = os.path.basename(device)
        backing = open(f"/sys/block/{name}/loop/backing_file").read().strip()
        resident = sum(int(run(["fincore", "--bytes", "--noheadings", "--output", "RES", f]).strip() or 0)
                       for f in [device, backing])
        return {"cached_growth": grown, "loop_and_file_resident": resident}
    finally:
        path.stop()


KINDS = [("(a) kernel zram0 lz4", KernelZram), ("(b) znbd attach (FUSE io_uring + loop dio)", ZnbdAttach),
         ("(c) nbdfuse + loop dio over znbd", ZnbdNbdfuse),
         ("(d) nbdfuse + loop dio over nbdkit sparse", NbdkitSparse),
         ("(e) znbd attach (/dev/fuse threads + loop dio)", ZnbdAttachThreads)]
RESULTS = os.path.join(ROOT, "Benchmarks", "compare", "results")


RING_SWITCH = "/sys/module/fuse/parameters/enable_uring"


@contextlib.contextmanager
def ring_switch_as_found():
    """(b) runs with --fuse-ring on, which turns the fuse module's switch on; this puts it back
    as it was, so later benchmarks (and znbd's --fuse-ring auto) see the host as it was."""
    before = open(RING_SWITCH).read().strip() if os.path.exists(RING_SWITCH) else None
    try:
        yield
    finally:
        if before is not None:
            with open(RING_SWITCH, "w") as f:
                f.write(before)


def measure(args, rows=None):
    """Measures the named rows (all when None) and merges them into the saved results."""
    workloads = [w for w in WORKLOADS if rows is None or w[0] in rows]
    about = machine.describe()
    with ring_switch_as_found(), tempfile.TemporaryDirectory(prefix="znbd-kernel-path-") as workdir:
        results = measure_all([kind(name, workdir, args.size) for name, kind in KINDS], workloads, args, workdir,
                              about)
        cache = None
        if rows is None:
            cache = {name: page_cache_growth(kind(name, os.path.join(workdir, "cache"), args.size), workdir)
                     for name, kind in KINDS[1:3]}
    path = os.path.join(args.out, "kernel_path.json")
    data = {"rows": {}}
    if rows is not None and os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data["paths"] = [name for name, _ in KINDS]
    data["settings"] = {"rounds": args.rounds, "runtime_s": args.runtime, "region": args.region}
    for label, _, bs, depth in workloads:
        data["rows"][label] = {"machine": about, "rounds": results[label],
                               "bytes_per_io": 4096 if bs == "4k" else 1 << 20}
    if cache is not None:
        data["page_cache_growth"] = cache
        data["machine"] = about
    os.makedirs(args.out, exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
    return data


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def render(data, limits=None, chart=None):
    """The report section, from kernel_path.json (and limits.json for the physical limit)."""
    names = data["paths"]
    a, b, c, d = names[:4]
    e = names[4] if len(names) > 4 else None
    order = [w[0] for w in WORKLOADS if w[0] in data["rows"]]
    lines = ["## The kernel path without the nbd driver\n"]
    lines.append("`sudo Benchmarks/compare/kernel_path.py` (the report's `--kernel-path`): fio libaio, direct, 60 % "
                 "compressible, on a 512 MiB region filled first; all paths set up at once and measured in turn "
                 f"each round, medians of {data['settings']['rounds']} rounds × {data['settings']['runtime_s']} s.\n")
    machines = {}
    for label in order:
        m = data["rows"][label]["machine"]
        machines.setdefault((m["date"], m["commit"]), (m, []))[1].append(label)
    for (_, _), (m, labels) in machines.items():
        which = "" if len(machines) == 1 else " (" + ", ".join(labels) + ")"
        lines.append(f"- Measured{which}: {machine.summary(m)}.")
    lines.append("")
    busiest = max(max(data["rows"][label]["machine"]["loadavg"]) for label in order)
    cores = data["rows"][order[0]]["machine"]["cores"]
    if busiest > cores:
        lines.append(f"The load average reached {busiest:.0f} on {cores} cores. (a) compresses in fio's own submitting "
                     "thread; (b)–(d) hand each request to server threads, which the scheduler gives their own "
                     "shares of the cores. Under such a load a ratio to (a) says as much about the load as about the "
                     "paths; the ratios between (b), (c) and (d), which all go through a server, hold better.\n")
    lines.append("IOPS; MB/s for the 1M rows (median of rounds):\n")
    extra = ["(b)/(e)"] if e else []
    lines.append("| workload | " + " | ".join(names + ["(b)/(a)", "(b)/(d)", "(b)/(c)"] + extra) + " |")
    lines.append("|---|" + "---|" * (len(names) + 3 + len(extra)))
    medians = {}
    for label in order:
        rounds = data["rows"][label]["rounds"]
        key = "mbps" if label.startswith("1M") else "iops"
        medians[label] = {n: median(rounds[n], key) for n in names}
        v = medians[label]
        cells = [f"{v[n]:,.0f}" for n in names]
        ratios = [f"{v[b] / v[x]:.2f}x" if v[x] else "n/a" for x in (a, d, c) + ((e,) if e else ())]
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    lines.append("")
    if "4k randwrite QD1" in data["rows"]:
        rounds = data["rows"]["4k randwrite QD1"]["rounds"]
        lines.append("4k randwrite QD1 completion latency, µs (p50 / p99, median of rounds): " + "; ".join(
            f"{n.split(' ')[0]} {median(rounds[n], 'p50_us'):.1f} / {median(rounds[n], 'p99_us'):.1f}" for n in names)
            + ".\n")
    lines.append("Every round, in the order measured:\n")
    lines.append("| workload | " + " | ".join(n.split(" ")[0] for n in names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for label in order:
        rounds = data["rows"][label]["rounds"]
        key = "mbps" if label.startswith("1M") else "iops"
        lines.append(f"| {label} | " + " | ".join(" ".join(f"{r[key]:,.0f}" for r in rounds[n]) for n in names) + " |")
    lines.append("")
    targets = []
    for label in ("4k randwrite QD32", "4k randread QD32"):
        if label in medians:
            v = medians[label]
            ba, bd = v[b] / v[a], v[b] / v[d]
            targets.append(f"- {label}: (b)/(a) = {ba:.2f}x (target ≥ 0.5x: {'met' if ba >= 0.5 else 'missed'}), "
                           f"(b)/(d) = {bd:.2f}x (target ≥ 2x: {'met' if bd >= 2 else 'missed'})"
                           + (f"; over /dev/fuse threads, (e)/(a) = {v[e] / v[a]:.2f}x" if e else ""))
    for name, grown in (data.get("page_cache_growth") or {}).items():
        resident = grown["loop_and_file_resident"] / 2**20
        targets.append(f"- Writing 256 MiB through {name}: {resident:.1f} MiB left in the page cache of the loop "
                       f"device and its file (fincore; target ≤ 32 MiB: {'met' if resident <= 32 else 'missed'}); "
                       f"`Cached:` grew {grown['cached_growth'] / 2**20:.1f} MiB machine-wide, other helpers' "
                       f"builds included")
    if targets:
        lines.append("Issue 13's targets for this path:\n")
        lines += targets
        lines.append("")
    if limits:
        lines.append("Against the physical limit (LZ4 on these pages, all cores, from the section above), in 4 KiB "
                     "pages per second:\n")
        lines.append("| workload | lz4 limit | (a) kernel zram0 | (b) znbd attach |")
        lines.append("|---|---|---|---|")
        for label in order:
            limit = limits["decompress_pages"] if "read" in label.split(" ")[1] else limits["compress_pages"]
            per = data["rows"][label]["bytes_per_io"] / 4096
            rounds = data["rows"][label]["rounds"]
            pa, pb = (median(rounds[n], "iops") * per for n in (a, b))
            lines.append(f"| {label} | {limit / 1000:,.0f}k | {pa / 1000:,.0f}k ({100 * pa / limit:.0f} %) | "
                         f"{pb / 1000:,.0f}k ({100 * pb / limit:.0f} %; {pb / pa:.2f}x zram0) |")
        lines.append("")
    if chart:
        lines.append(f"![kernel path]({chart})\n")
    return "\n".join(lines)


def pages_per_second(data):
    """label -> path -> median 4 KiB pages per second, for the chart."""
    return {label: {n: median(row["rounds"][n], "iops") * row["bytes_per_io"] / 4096 for n in data["paths"]}
            for label, row in data["rows"].items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime", type=int, default=10, help="seconds per fio round")
    parser.add_argument("--size", type=int, default=1 << 30, help="device size in bytes")
    parser.add_argument("--region", default="512M", help="the part of the device fio uses")
    parser.add_argument("--rows", help="comma-separated workload labels to measure again (default: all)")
    parser.add_argument("--out", default=RESULTS, help="where kernel_path.json goes")
    args = parser.parse_args()
    check()
    rows = None if not args.rows else [r.strip() for r in args.rows.split(",")]
    print(render(measure(args, rows)))


def check():
    if os.geteuid() != 0:
        sys.exit("needs root (losetup, zram, FUSE mounts)")
    for tool in ["fio", "nbdfuse", "nbdkit", "losetup", "fincore"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (scripts/install-deps.sh)")
    if not os.path.exists(os.path.join(ROOT, ".build/release/znbd")):
        sys.exit("build first: swift build -c release --product znbd")


if __name__ == "__main__":
    main()
