"""Scale: empty-device cost, per-page cost while filling, connections; and kernel zram0's own fio figures."""
import os
import subprocess
import time

import servers
import workloads
from section import emit


def empty_device_rss(binary, workdir):
    emit("### Empty device cost (server RSS right after start)\n")
    emit("| disksize | RSS | of disksize |")
    emit("|---|---|---|")
    for gib in (1, 16, 64):
        with servers.Znbd(workdir, gib << 30, binary, "lz4") as server:
            time.sleep(0.3)
            rss = servers.rss_bytes(server.pid)
        emit(f"| {gib} GiB | {rss / 2**20:.1f} MiB | {100 * rss / (gib << 30):.3f} % |")
    emit()


def fill(binary, workdir, total=2 << 30, step=512 << 20):
    emit("### Filling 2 GiB (1 MiB writes, QD4): does the per-page cost stay flat?\n")
    emit("| range | MB/s | server CPU µs per page |")
    emit("|---|---|---|")
    with servers.Znbd(workdir, total, binary, "lz4") as server:
        for offset in range(0, total, step):
            before = servers.cpu_seconds(server.pid)
            r = workloads.fio(server.uri, "write", "1M", 4, step, 0, extra=[f"--offset={offset}"])
            cpu = servers.cpu_seconds(server.pid) - before
            emit(f"| {offset >> 20}–{(offset + step) >> 20} MiB | {r['mbps']:.0f} | {1e6 * cpu / (step / 4096):.2f} |")
    emit()


def connections(binary, workdir, size=512 << 20, runtime=5):
    emit("### Connections: 4 KiB randwrite / randread, QD32 per connection, against nbdkit sparse\n")
    counts = (1, 2, 4, 8)
    iops = {}
    for make in (lambda: servers.Znbd(workdir, size, binary, "lz4"), lambda: servers.nbdkit_sparse(workdir, size)):
        with make() as server:
            workloads.prefill(server.uri, size)
            for jobs in counts:
                extra = [f"--numjobs={jobs}", "--group_reporting"]
                w = workloads.fio(server.uri, "randwrite", "4k", 32, size // jobs, runtime, extra=extra)
                r = workloads.fio(server.uri, "randread", "4k", 32, size // jobs, runtime, extra=extra)
                iops[(server.name, jobs)] = (w["iops"], r["iops"])
    emit("| connections | znbd randwrite | znbd randread | nbdkit sparse randwrite | nbdkit sparse randread |")
    emit("|---|---|---|---|---|")
    for jobs in counts:
        (zw, zr), (sw, sr) = iops[("znbd lz4", jobs)], iops[("nbdkit sparse", jobs)]
        emit(f"| {jobs} | {zw:,.0f} | {zr:,.0f} | {sw:,.0f} | {sr:,.0f} |")
    emit()


def kernel_zram_fio(runtime=5, size=512 << 20):
    """zram0 with lz4, fio psync direct: no network hop, the no-transport reference."""
    zram = "/sys/block/zram0"
    if os.geteuid() != 0 or not os.path.exists(zram):
        return
    emit("### Kernel zram0 (lz4, fio psync direct, no transport): the reference\n")
    emit("| workload | IOPS | p50 µs | p99 µs |")
    emit("|---|---|---|---|")
    with open(f"{zram}/reset", "w") as f:
        f.write("1")
    with open(f"{zram}/comp_algorithm", "w") as f:
        f.write("lz4")
    with open(f"{zram}/disksize", "w") as f:
        f.write(str(size))
    try:
        base = ["fio", "--name=zram", "--filename=/dev/zram0", "--ioengine=psync", "--direct=1",
                f"--size={size}", "--buffer_compress_percentage=60", "--refill_buffers", "--output-format=json"]
        subprocess.run(base + ["--rw=write", "--bs=1M"], check=True, capture_output=True)
        for label, rw in (("4k randwrite QD1", "randwrite"), ("4k randread QD1", "randread")):
            out = subprocess.run(base + [f"--rw={rw}", "--bs=4k", "--time_based", f"--runtime={runtime}"],
                                 check=True, capture_output=True, text=True).stdout
            import json
            job = json.loads(out[out.index("{"):])["jobs"][0]
            side = job["read"] if rw == "randread" else job["write"]
            pct = side["clat_ns"]["percentile"]
            emit(f"| {label} | {side['iops']:,.0f} | {pct['50.000000'] / 1000:.1f} | {pct['99.000000'] / 1000:.1f} |")
    finally:
        with open(f"{zram}/reset", "w") as f:
            f.write("1")
    emit()


def report(binary, workdir):
    emit("## Scale\n")
    empty_device_rss(binary, workdir)
    fill(binary, workdir)
    connections(binary, workdir)
    kernel_zram_fio()
