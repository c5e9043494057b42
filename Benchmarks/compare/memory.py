"""Memory efficiency on real anonymous memory: znbd, kernel zram0 and nbdkit zstd on the same bytes."""
import os
import subprocess
import sys
import time

import servers
from section import emit

ZRAM = "/sys/block/zram0"


def corpus(root):
    path = os.environ.get("ZRAM_CORPUS", "/tmp/znbd-anon.bin")
    subprocess.run([os.path.join(root, "scripts", "capture-anon-corpus.sh"), "--if-missing", path], check=True)
    return path


def shape(path):
    """Pages, same-filled pages and pages that lz4 cannot shrink below 3/4 of a page (a rough 'incompressible')."""
    size = os.path.getsize(path) // 4096 * 4096
    same = 0
    with open(path, "rb") as f:
        for _ in range(size // 4096):
            page = f.read(4096)
            if page == page[:8] * 512:
                same += 1
    return size // 4096, same


def znbd_memory(binary, workdir, path, algorithm):
    size = (os.path.getsize(path) + (1 << 20)) // (1 << 20) << 20
    with servers.Znbd(workdir, size, binary, algorithm) as server:
        rss0 = servers.rss_bytes(server.pid)
        subprocess.run(["nbdcopy", "-S", "0", path, server.uri], check=True)
        time.sleep(0.2)
        rss = servers.rss_bytes(server.pid) - rss0
        mm = server.status()["mm_stat"]
    return mm["orig_data_size"], mm["compr_data_size"], mm["mem_used_total"], rss


def kernel_memory(path, algorithm):
    with open(f"{ZRAM}/reset", "w") as f:
        f.write("1")
    with open(f"{ZRAM}/comp_algorithm", "w") as f:
        f.write(algorithm)
    with open(f"{ZRAM}/disksize", "w") as f:
        f.write(str((os.path.getsize(path) + (1 << 20)) // (1 << 20) << 20))
    subprocess.run(["dd", f"if={path}", "of=/dev/zram0", "bs=1M", "oflag=direct", "status=none"], check=True)
    with open(f"{ZRAM}/mm_stat") as f:
        fields = [int(x) for x in f.read().split()]
    with open(f"{ZRAM}/reset", "w") as f:
        f.write("1")
    return fields[0], fields[1], fields[2]


def kernel_algorithms():
    try:
        with open(f"{ZRAM}/comp_algorithm") as f:
            return [a.strip("[]") for a in f.read().split()]
    except OSError:
        return []


def nbdkit_memory(workdir, path):
    size = (os.path.getsize(path) + (1 << 20)) // (1 << 20) << 20
    with servers.nbdkit_zstd(workdir, size) as server:
        rss0 = servers.rss_bytes(server.pid)
        subprocess.run(["nbdcopy", "-S", "0", path, server.uri], check=True)
        return servers.rss_bytes(server.pid) - rss0


def report(binary, workdir, root):
    path = corpus(root)
    pages, same = shape(path)
    emit("## Memory: the same real anonymous memory everywhere\n")
    emit(f"Data: {path}, {pages * 4096 / 1e6:.1f} MB, {pages} pages, {same} same-filled ({100 * same / pages:.1f} %).\n")
    emit("| store | algorithm | orig | compr_data_size | mem_used_total | RSS growth | ratio orig/total | total/compr |")
    emit("|---|---|---|---|---|---|---|---|")
    rows = []
    for algorithm in ("lz4", "lzo", "lz4hc", "zstd"):
        orig, compr, total, rss = znbd_memory(binary, workdir, path, algorithm)
        rows.append(("znbd", algorithm, orig, compr, total, rss))
        print(f"  znbd {algorithm}: total {total}", file=sys.stderr)
    if os.geteuid() == 0 and os.path.exists(ZRAM):
        for algorithm in kernel_algorithms():
            orig, compr, total = kernel_memory(path, algorithm)
            rows.append(("kernel zram0", algorithm, orig, compr, total, None))
    rss = nbdkit_memory(workdir, path)
    rows.append(("nbdkit memory", "zstd", pages * 4096, None, None, rss))
    for store, algorithm, orig, compr, total, rss in rows:
        def mb(v):
            return "—" if v is None else f"{v / 1e6:.1f} MB"
        base = total if total else rss
        ratio = f"{orig / base:.2f}" if base else "—"
        overhead = f"{total / compr:.4f}" if total and compr else "—"
        emit(f"| {store} | {algorithm} | {mb(orig)} | {mb(compr)} | {mb(total)} | {mb(rss)} | {ratio} | {overhead} |")
    emit()
    kernel = {a: t for s, a, _, _, t, _ in rows if s == "kernel zram0"}
    ours = {a: t for s, a, _, _, t, _ in rows if s == "znbd"}
    if "lz4" in kernel:
        emit(f"- znbd lz4 mem_used_total / kernel lz4: **{ours['lz4'] / kernel['lz4']:.3f}**")
    best = min((t for t in kernel.values()), default=None)
    if best:
        emit(f"- znbd zstd / kernel's best ({min(kernel, key=kernel.get)}): **{ours['zstd'] / best:.3f}**")
    emit()
    return rows
