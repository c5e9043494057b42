#!/usr/bin/env python3
"""Tiering (issue 12): a device whose working set is twice its mem_limit, with and without a
backing file, and nbdkit memory as the peer; then recompression's saving per algorithm pair.

Working set: REGION bytes of fio's 60 % compressible pages, which compress to about 2.4x, so the
compressed working set is about twice MEM_LIMIT (the raw one would be 4.8x). Each round is a fresh
server: the region is written once (fio, 1 MiB writes), then zipf_mix.py (libnbd) runs a zipf(1.2)
4 KiB mix, 70 % reads, at QD8 for RUNTIME seconds, counting failed requests (fio would stop at the
first ENOSPC). Without a backing device a write past mem_limit fails, as in the kernel. With a
backing file, pages leave RAM through writeback: automatically at mem_limit when the server does
that, or else by manual cycles (`writeback idle` above a high watermark, then `idle all`) beside
the workload; the report says which. Figures: IOPS and p99 completion latency per direction
(medians of rounds), failed requests, mm_stat's mem_used_total, bd_stat, and the backing file's
allocated bytes (st_blocks × 512); nbdkit memory (sparse) under the same load.

Recompression: REGION bytes of fio's pages, and the anonymous-memory corpus, stored with lz4;
`idle all`, `recompress type=idle` with the secondary (zstd, lz4hc) at priority 1; mm_stat's
compr_data_size and mem_used_total before and after.

  Benchmarks/compare/tiering.py [--rounds 3] [--runtime 15] [--out DIR]    (release znbd built first)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import machine  # noqa: E402
import servers  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
BINARY = os.path.join(ROOT, ".build", "release", "znbd")
MIB = 1 << 20
MEM_LIMIT = 64 * MIB
REGION = 320 * MIB
DISKSIZE = 512 * MIB
RUNTIME = 15
DEPTH, READS, THETA = 8, 70, 1.2
HIGH_WATERMARK = 0.75  # of mem_limit: above it the manual cycle writes back
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has python3-libnbd
MM_STAT = ["orig_data_size", "compr_data_size", "mem_used_total", "mem_limit", "mem_used_max", "same_pages",
           "pages_compacted", "huge_pages", "huge_pages_since"]


class Device:
    """One `znbd serve` with one device, configured through the control surface."""

    def __init__(self, workdir, algorithm="lz4"):
        self.server = servers.Znbd(workdir, DISKSIZE, BINARY, algorithm)

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop()

    @property
    def uri(self):
        return self.server.uri

    def set(self, attribute, value):
        return subprocess.run([BINARY, "set", "zram0", attribute, str(value), "--control", self.server.control],
                              capture_output=True, text=True)

    def must_set(self, attribute, value):
        done = self.set(attribute, value)
        if done.returncode != 0:
            raise RuntimeError(f"znbd set zram0 {attribute} {value}: {done.stderr.strip()}")

    def get(self, attribute):
        return subprocess.run([BINARY, "get", "zram0", attribute, "--control", self.server.control], check=True,
                              capture_output=True, text=True).stdout.strip()

    def mm_stat(self):
        return dict(zip(MM_STAT, (int(x) for x in self.get("mm_stat").split())))

    def bd_stat(self):
        fields = self.get("bd_stat").split()
        return {"bd_count": int(fields[0]), "bd_reads": int(fields[1]), "bd_writes": int(fields[2])}

    def configure(self, backing=None, mem_limit=MEM_LIMIT, secondary=None, auto=False, layout=None):
        """backing_dev and recomp_algorithm before disksize, as zram requires; `auto` turns on
        writeback_auto (writeback at mem_limit instead of a failed write)."""
        self.must_set("reset", 1)
        if backing:
            self.must_set("backing_dev", backing)
        if layout:
            self.must_set("writeback_layout", layout)
        if secondary:
            self.must_set("recomp_algorithm", f"algo={secondary} priority=1")
        self.must_set("disksize", DISKSIZE)
        self.must_set("mem_limit", mem_limit)
        if auto:
            self.must_set("writeback_auto", 1)


def fill(uri, size, offset=0):
    """Writes [offset, offset+size) once with 1 MiB writes; returns the bytes written and the
    error that stopped fio, if any (fio ends a job at its first ENOSPC)."""
    args = ["fio", "--name=fill", "--ioengine=nbd", f"--uri={uri}", "--rw=write", "--bs=1M", "--iodepth=4",
            f"--size={size}", f"--offset={offset}", "--buffer_compress_percentage=60", "--refill_buffers",
            "--output-format=json"]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    return {"bytes": job["write"]["io_bytes"], "error": os.strerror(job["error"]) if job["error"] else None}


def mix(uri, runtime):
    """zipf_mix.py: the 4 KiB read/write mix, counting failed requests."""
    out = subprocess.run([SYSTEM_PYTHON, os.path.join(HERE, "zipf_mix.py"), uri, str(REGION), str(runtime),
                          "--depth", str(DEPTH), "--reads", str(READS), "--theta", str(THETA)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


class WritebackCycles:
    """The manual form of tiering, for a server that does not write back by itself at
    mem_limit: every `period` seconds, when mem_used_total is above HIGH_WATERMARK of mem_limit,
    `writeback idle` (the pages nobody touched since the last mark); then `idle all` (the next
    mark), as zram's documentation runs it from a timer."""

    def __init__(self, device, period=1.0):
        self.device, self.period = device, period
        self.stop_event = threading.Event()
        self.cycles = 0
        self.writebacks = 0
        self.failures = {}
        self.thread = threading.Thread(target=self.run, daemon=True)

    def send(self, attribute, value):
        done = self.device.set(attribute, value)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            reason = f"{attribute} {value}: " + (lines[-1] if lines else f"exit {done.returncode}")
            self.failures[reason] = self.failures.get(reason, 0) + 1

    def cycle(self):
        if self.device.mm_stat()["mem_used_total"] >= HIGH_WATERMARK * MEM_LIMIT:
            self.send("writeback", "idle")
            self.writebacks += 1
        self.send("idle", "all")
        self.cycles += 1

    def write_back_fill(self):
        """During the sequential fill every page is cold: above the watermark, mark all and
        write them back."""
        if self.device.mm_stat()["mem_used_total"] >= HIGH_WATERMARK * MEM_LIMIT:
            self.send("idle", "all")
            self.send("writeback", "idle")
            self.writebacks += 1

    def run(self):
        self.send("idle", "all")
        while not self.stop_event.wait(self.period):
            self.cycle()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()


def automatic_writeback(workdir):
    """Does the server write back by itself at mem_limit (writeback_auto 1)? Filled past the
    limit with a backing file and no writeback command: it does if nothing failed and bd_stat
    counts writes. False when the attribute does not exist."""
    backing = os.path.join(workdir, "probe.img")
    with Device(workdir) as device:
        try:
            device.configure(backing, auto=True)
        except RuntimeError as error:
            print(f"  no automatic writeback: {error}", file=sys.stderr)
            return False
        result = fill(device.uri, REGION)
        return result["error"] is None and device.bd_stat()["bd_writes"] > 0


def packed_layout(workdir):
    """Does the server have writeback_layout packed?"""
    with Device(workdir) as device:
        try:
            device.configure(os.path.join(workdir, "probe-layout.img"), layout="packed")
            return True
        except RuntimeError as error:
            print(f"  no packed layout: {error}", file=sys.stderr)
            return False


def allocated(path):
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


def tiered_round(workdir, mode):
    """mode: 'auto' (backing file, writeback_auto), 'backing' (backing file, manual cycles),
    'none' (no backing: writes past mem_limit fail)."""
    backing = os.path.join(workdir, "backing.img") if mode in ("auto", "packed", "backing") else None
    if backing and os.path.exists(backing):
        os.unlink(backing)
    with Device(workdir) as device:
        device.configure(backing, auto=mode in ("auto", "packed"), layout="packed" if mode == "packed" else None)
        manual = mode == "backing"
        cycles = WritebackCycles(device) if manual else None
        stored, stopped = 0, None
        for offset in range(0, REGION, 32 * MIB):
            chunk = fill(device.uri, 32 * MIB, offset)
            stored += chunk["bytes"]
            if chunk["error"]:
                stopped = chunk["error"]
                break
            if cycles:
                cycles.write_back_fill()
        if cycles:
            with cycles:
                result = mix(device.uri, RUNTIME)
        else:
            result = mix(device.uri, RUNTIME)
        result = {"filled": stored, "fill_error": stopped, "mix": result, "mm_stat": device.mm_stat(),
                  "rss": servers.rss_bytes(device.server.pid)}
        if backing:
            result["bd_stat"] = device.bd_stat()
            if mode == "packed":
                fields = device.get("bd_layout_stat").split()
                result["bd_layout_stat"] = dict(zip(["objects", "object_bytes", "block_bytes", "saved_bytes"],
                                                    (int(x) for x in fields)))
            result["backing_allocated"] = allocated(backing)
            result["writeback_cycles"] = cycles.cycles if cycles else 0
            result["writebacks"] = cycles.writebacks if cycles else 0
            result["writeback_failures"] = cycles.failures if cycles else {}
        return result


def nbdkit_round(workdir):
    with servers.nbdkit_sparse(workdir, DISKSIZE) as server:
        rss0 = servers.rss_bytes(server.pid)
        filled = fill(server.uri, REGION)
        result = mix(server.uri, RUNTIME)
        return {"filled": filled["bytes"], "fill_error": filled["error"], "mix": result,
                "rss": servers.rss_bytes(server.pid) - rss0}


def recompression(workdir, secondary, corpus=None):
    """lz4 primary, `secondary` at priority 1: mm_stat before and after `idle all` +
    `recompress type=idle`, on REGION bytes of fio's pages or on the anonymous-memory corpus."""
    with Device(workdir) as device:
        device.configure(None, 0, secondary)
        if corpus:
            subprocess.run(["nbdcopy", "-S", "0", corpus, device.uri], check=True)
        else:
            fill(device.uri, REGION)
        before = device.mm_stat()
        device.must_set("idle", "all")
        started = time.monotonic()
        device.must_set("recompress", "type=idle")
        seconds = time.monotonic() - started
        return {"before": before, "after": device.mm_stat(), "seconds": seconds}


def corpus_path():
    path = os.environ.get("ZRAM_CORPUS", "/tmp/znbd-anon.bin")
    return path if os.path.exists(path) and os.path.getsize(path) <= DISKSIZE else None


def measure(out, rounds=3, runtime=RUNTIME):
    global RUNTIME
    RUNTIME = runtime
    about = machine.describe()
    data = {"machine": about, "settings": {"mem_limit": MEM_LIMIT, "region": REGION, "disksize": DISKSIZE,
                                           "runtime_s": RUNTIME, "rounds": rounds, "depth": DEPTH,
                                           "reads": READS, "theta": THETA, "high_watermark": HIGH_WATERMARK}}
    with tempfile.TemporaryDirectory(prefix="znbd-tiering-", dir="/var/tmp") as workdir:
        data["automatic_writeback"] = automatic_writeback(workdir)
        print(f"  automatic writeback at mem_limit: {data['automatic_writeback']}", file=sys.stderr)
        data["rounds"] = {"auto": [], "packed": [], "backing": [], "none": [], "nbdkit": []}
        modes = (["auto"] + (["packed"] if packed_layout(workdir) else []) if data["automatic_writeback"] else [])
        modes += ["backing", "none"]
        for round in range(rounds):
            machine.wait_while_realtime()
            for mode in modes:
                r = tiered_round(workdir, mode)
                data["rounds"][mode].append(r)
                print(f"  round {round + 1} {mode}: {r['mix']}", file=sys.stderr)
            r = nbdkit_round(workdir)
            data["rounds"]["nbdkit"].append(r)
            print(f"  round {round + 1} nbdkit: {r['mix']}", file=sys.stderr)
            machine.sample(about)
        data["recompression"] = {}
        machine.wait_while_realtime()
        sources = [("fio 60 % pages", None)] + ([("anonymous-memory corpus", corpus_path())] if corpus_path() else [])
        for source, corpus in sources:
            for secondary in ("zstd", "lz4hc"):
                key = f"{source}: lz4 → {secondary}"
                try:
                    data["recompression"][key] = recompression(workdir, secondary, corpus)
                except (RuntimeError, subprocess.CalledProcessError) as error:
                    data["recompression"][key] = {"error": str(error)}
        machine.sample(about)
    with open(os.path.join(out, "tiering.json"), "w") as f:
        json.dump(data, f, indent=2)
    return data


LABELS = {"auto": "znbd lz4 + backing file, writeback_auto", "packed": "znbd lz4 + backing file, writeback_auto, packed",
          "backing": "znbd lz4 + backing file, manual cycles",
          "none": "znbd lz4, no backing", "nbdkit": "nbdkit memory sparse"}
MODES = ("auto", "packed", "backing", "none", "nbdkit")


def med(rounds, *keys):
    values = []
    for r in rounds:
        v = r
        for k in keys:
            v = v[k]
        values.append(v)
    return statistics.median(values)


def render(data, chart=None):
    s = data["settings"]
    lines = ["## Tiering: a working set twice mem_limit\n",
             f"`Benchmarks/compare/tiering.py` (the report's `--tiering`). Measured: {machine.summary(data['machine'])}.\n",
             f"A {s['disksize'] // MIB} MiB device with mem_limit {s['mem_limit'] // MIB} MiB. {s['region'] // MIB} MiB "
             f"of fio's 60 % compressible pages are written first with 1 MiB writes (about "
             f"{s['region'] / 2.4 / s['mem_limit']:.1f}x mem_limit once compressed). Then "
             f"`Benchmarks/compare/zipf_mix.py` (libnbd, so that failed requests are counted; fio ends a job at "
             f"its first ENOSPC) runs 4 KiB requests over the region, zipf θ={s['theta']}, {s['reads']} % reads, "
             f"QD{s['depth']}, for {s['runtime_s']} s. Medians of {s['rounds']} rounds, each on a fresh server. "
             "The client is Python, so IOPS are capped by it, alike for every row.\n"]
    watermark = int(100 * s.get("high_watermark", HIGH_WATERMARK))
    manual = (f"the manual form: after every 32 MiB of the fill, and every second during the mix, when "
              f"mem_used_total is above {watermark} % of mem_limit, `writeback idle` (pages untouched since the "
              "last mark); then `idle all` (the next mark)")
    if data["automatic_writeback"]:
        lines.append("With `writeback_auto 1` the device writes back by itself when a write meets mem_limit (idle "
                     "pages first, then any, round the table like a clock), and no writeback command is sent. The "
                     f"manual-cycles row is {manual}. Reads of written-back pages come from the file and stay there "
                     "(no promotion).\n")
    else:
        watermark = int(100 * s.get("high_watermark", HIGH_WATERMARK))
        lines.append("**The server does not yet write back by itself at mem_limit** (filling past it with a backing "
                     "file and no command fails with ENOSPC, as the kernel does), so the backing-file row is the "
                     "manual form of tiering that exists today: after every 32 MiB of the fill, and every second "
                     f"during the mix, when mem_used_total is above {watermark} % of mem_limit, `writeback idle` "
                     "(pages untouched since the last mark); then `idle all` (the next mark). Reads of "
                     "written-back pages come from the file and stay there (no promotion).\n")
    lines.append("| store | stored by the fill | read IOPS | write IOPS | read p99 µs | write p99 µs | failed requests "
                 "(read / write) | mem_used_total | bd_stat (count reads writes) | backing file allocated |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for mode in MODES:
        rounds = data["rounds"].get(mode)
        if not rounds:
            continue
        memory = (f"{med(rounds, 'mm_stat', 'mem_used_total') / MIB:.1f} MiB" if mode != "nbdkit"
                  else f"{med(rounds, 'rss') / MIB:.1f} MiB (RSS growth)")
        bd = "—"
        backing = "—"
        if mode in ("auto", "packed", "backing"):
            last = rounds[-1]["bd_stat"]
            bd = f"{last['bd_count']} {last['bd_reads']} {last['bd_writes']} (last round)"
            backing = f"{med(rounds, 'backing_allocated') / MIB:.1f} MiB"
        stops = sorted({r["fill_error"] for r in rounds if r["fill_error"]})
        filled = f"{med(rounds, 'filled') / MIB:.0f} MiB" + (f" (fio stopped: {', '.join(stops)})" if stops else "")
        lines.append(f"| {LABELS[mode]} | {filled} | {med(rounds, 'mix', 'read', 'iops'):,.0f} | "
                     f"{med(rounds, 'mix', 'write', 'iops'):,.0f} | {med(rounds, 'mix', 'read', 'p99_us'):,.0f} | "
                     f"{med(rounds, 'mix', 'write', 'p99_us'):,.0f} | {med(rounds, 'mix', 'read', 'failed'):,.0f} / "
                     f"{med(rounds, 'mix', 'write', 'failed'):,.0f} | {memory} | {bd} | {backing} |")
    lines.append("")
    errors = {}
    for mode in MODES:
        for r in data["rounds"].get(mode, []):
            for kind in ("read", "write"):
                for name, count in r["mix"][kind]["errors"].items():
                    key = f"{LABELS[mode]}, {kind}s: {name}"
                    errors[key] = errors.get(key, 0) + count
    if errors:
        lines.append("Failed requests, all rounds: " + "; ".join(f"{k} ×{v:,}" for k, v in errors.items()) + ".\n")
    tiered = "auto" if data["rounds"].get("auto") else "backing"
    if data["rounds"][tiered] and data["rounds"]["none"]:
        full = data["rounds"]["none"][-1]["mm_stat"]
        ratio = full["orig_data_size"] / full["compr_data_size"] if full["compr_data_size"] else 0
        count = med(data["rounds"][tiered], "bd_stat", "bd_count")
        if data["rounds"].get("packed"):
            packed = data["rounds"]["packed"]
            layout = packed[-1]["bd_layout_stat"]
            lines.append(f"Backing layout, measured: with one 4 KiB block per written-back page (the kernel's), the "
                         f"{LABELS[tiered]} row's file holds {med(data['rounds'][tiered], 'backing_allocated') / MIB:.1f}"
                         f" MiB; with `writeback_layout packed` it holds "
                         f"{med(packed, 'backing_allocated') / MIB:.1f} MiB (median allocated bytes). Last packed "
                         f"round's bd_layout_stat: {layout['objects']:,} objects, {layout['object_bytes'] / MIB:.1f} "
                         f"MiB of objects in {layout['block_bytes'] / MIB:.1f} MiB of blocks, "
                         f"{layout['saved_bytes'] / MIB:.1f} MiB saved against one block per page.\n")
        elif ratio:
            lines.append(f"Backing layout ({LABELS[tiered]}): one 4 KiB block per written-back page, the kernel's "
                         f"(bd_count {count:,.0f} "
                         f"= {count * 4096 / MIB:.1f} MiB). Packed writeback is not implemented yet; packing the "
                         f"same objects at their compressed size (ratio {ratio:.2f}, from the device without "
                         f"backing) would take about {count * 4096 / ratio / MIB:.1f} MiB, an estimate, not a "
                         "measurement.\n")
    if data["rounds"]["backing"]:
        cycles = data["rounds"]["backing"][-1]
        if cycles.get("writeback_cycles"):
            lines.append(f"Last round's manual cycles: {cycles['writeback_cycles']} during the mix, "
                         f"{cycles['writebacks']} `writeback idle` commands in all (fill included).\n")
    if data["rounds"]["backing"]:
        failures = {}
        for r in data["rounds"]["backing"]:
            for reason, count in (r.get("writeback_failures") or {}).items():
                failures[reason] = failures.get(reason, 0) + count
        if failures:
            lines.append("Writeback commands that failed during the rounds: " +
                         "; ".join(f"{reason} ×{count}" for reason, count in failures.items()) + ".\n")
    recomp = data.get("recompression") or {}
    if recomp:
        lines.append(f"Recompression's saving per algorithm pair: {s['region'] // MIB} MiB of fio's pages, and the "
                     "anonymous-memory corpus (a Python heap, `scripts/capture-anon-corpus.sh`), stored with lz4, then "
                     "`idle all` and `recompress type=idle` with the secondary at priority 1 (default levels); "
                     "mm_stat before and after (no compaction):\n")
        lines.append("| data: pair | compr_data_size before → after | mem_used_total before → after | saved | seconds |")
        lines.append("|---|---|---|---|---|")
        for pair, r in recomp.items():
            if "error" in r:
                lines.append(f"| {pair} | {r['error']} | | | |")
                continue
            b, a = r["before"], r["after"]
            saved = 1 - a["mem_used_total"] / b["mem_used_total"] if b["mem_used_total"] else 0
            lines.append(f"| {pair} | {b['compr_data_size'] / MIB:.1f} → {a['compr_data_size'] / MIB:.1f} MiB"
                         f" | {b['mem_used_total'] / MIB:.1f} → {a['mem_used_total'] / MIB:.1f} MiB | "
                         f"{100 * saved:.1f} % | {r['seconds']:.1f} |")
        lines.append("")
    if chart:
        lines.append(f"![tiering]({chart})\n")
    return "\n".join(lines)


def chart(data, path):
    import charts
    plt = charts._pyplot()
    modes = [m for m in MODES if data["rounds"].get(m)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    x = range(len(modes))
    reads = [med(data["rounds"][m], "mix", "read", "iops") / 1000 for m in modes]  # noqa: E501
    writes = [med(data["rounds"][m], "mix", "write", "iops") / 1000 for m in modes]
    left.bar([i - 0.2 for i in x], reads, 0.4, label="read")
    left.bar([i + 0.2 for i in x], writes, 0.4, label="write")
    left.set_xticks(list(x))
    left.set_xticklabels([LABELS[m].replace(", ", ",\n") for m in modes], fontsize=6)
    left.set_ylabel("thousand IOPS (zipf 4 KiB mix, QD8, libnbd client)")
    left.legend(fontsize=8)
    memory = [(med(data["rounds"][m], "mm_stat", "mem_used_total") if m != "nbdkit"
               else med(data["rounds"][m], "rss")) / MIB for m in modes]
    right.bar([i - 0.2 for i in x], memory, 0.4, label="RAM (mem_used_total; nbdkit: RSS growth)")
    tiered = [(i, m) for i, m in enumerate(modes) if m in ("auto", "packed", "backing")]
    if tiered:
        right.bar([i + 0.2 for i, _ in tiered], [med(data["rounds"][m], "backing_allocated") / MIB for _, m in tiered],
                  0.4, label="backing file allocated")
    right.axhline(data["settings"]["mem_limit"] / MIB, color="grey", linestyle="--", linewidth=0.8, label="mem_limit")
    right.set_xticks(list(x))
    right.set_xticklabels([LABELS[m].replace(", ", ",\n") for m in modes], fontsize=6)
    right.set_ylabel("MiB")
    right.legend(fontsize=8)
    fig.suptitle("Working set twice mem_limit")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime", type=int, default=RUNTIME, help="seconds of the mix per round")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    if not os.path.exists(BINARY):
        sys.exit("build first: swift build -c release --product znbd")
    os.makedirs(args.out, exist_ok=True)
    print(render(measure(args.out, args.rounds, args.runtime)))


if __name__ == "__main__":
    main()
