#!/usr/bin/env python3
"""The kernel path without the nbd driver: block-device IOPS through each way of reaching
a compressed RAM device, measured with fio in one run, medians of several rounds.

  (a) kernel zram0 (lz4)
  (b) znbd attach: znbd's own FUSE export + loop (direct I/O)
  (c) nbdfuse + loop (direct I/O) over znbd's NBD socket
  (d) nbdfuse + loop (direct I/O) over nbdkit memory allocator=sparse

fio: libaio, direct, 4 KiB at QD32, 60 % compressible data, randwrite and randread over a
region filled first (so that reads decompress real pages); all four paths are set up at
once and each round runs them in turn, so a busy machine slows them alike. Also the page cache grown by
writing 256 MiB through (b) and (c). Needs root, /dev/fuse, loop devices, fio, nbdfuse,
nbdkit and the zram module. Build first: swift build -c release --product znbd

  sudo Benchmarks/compare/kernel_path.py [--rounds 3] [--runtime 10]
"""
import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

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


def fio(device, rw, bs, depth, size, runtime, cwd):
    args = ["fio", "--name=job", f"--filename={device}", f"--rw={rw}", f"--bs={bs}", f"--iodepth={depth}",
            f"--size={size}"] + COMMON
    if runtime:
        args += ["--time_based", f"--runtime={runtime}"]
    result = json.loads(run(args, cwd=cwd))["jobs"][0]
    return result["write"]["iops"] if "write" in rw else result["read"]["iops"]


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
    def start(self):
        binary, control, _ = self.znbd([])
        fuse_file = os.path.join(self.dir, "fuse", "zram0")
        wait_for(lambda: os.path.exists(fuse_file), "the FUSE export")
        loop = run([binary, "attach", "zram0", "--attach", "fuse", "--control", control]).strip()
        self.undo.append(lambda: subprocess.run([binary, "detach", "zram0", "--control", control], capture_output=True))
        return loop


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


def measure_all(paths, args, cwd):
    """Every path set up at once, rounds interleaved (each round runs every path in turn),
    so that a change in the machine's load hits all paths alike."""
    devices = {}
    try:
        for path in paths:
            devices[path.name] = path.start()
            fio(devices[path.name], "write", "1M", 8, args.region, 0, cwd)  # fill: reads decompress real pages
        results = {path.name: {"randwrite": [], "randread": []} for path in paths}
        for round in range(args.rounds):
            print(f"round {round + 1} of {args.rounds}", file=sys.stderr)
            for rw in ["randwrite", "randread"]:
                for path in paths:
                    results[path.name][rw].append(fio(devices[path.name], rw, "4k", 32, args.region, args.runtime, cwd))
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime", type=int, default=10, help="seconds per fio round")
    parser.add_argument("--size", type=int, default=1 << 30, help="device size in bytes")
    parser.add_argument("--region", default="512M", help="the part of the device fio uses")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (losetup, zram, FUSE mounts)")
    for tool in ["fio", "nbdfuse", "nbdkit", "losetup"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (scripts/install-deps.sh)")
    if not os.path.exists(os.path.join(ROOT, ".build/release/znbd")):
        sys.exit("build first: swift build -c release --product znbd")

    kinds = [("(a) kernel zram0 lz4", KernelZram), ("(b) znbd attach (FUSE + loop dio)", ZnbdAttach),
             ("(c) nbdfuse + loop dio over znbd", ZnbdNbdfuse), ("(d) nbdfuse + loop dio over nbdkit sparse", NbdkitSparse)]
    with tempfile.TemporaryDirectory(prefix="znbd-kernel-path-") as workdir:
        results = measure_all([kind(name, workdir, args.size) for name, kind in kinds], args, workdir)
        cache = {name: page_cache_growth(kind(name, os.path.join(workdir, "cache"), args.size), workdir)
                 for name, kind in kinds[1:3]}

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"\n{cpu}, {os.cpu_count()} cores, Linux {platform.release()}; fio libaio direct 4 KiB QD32, "
          f"60 % compressible, medians of {args.rounds} x {args.runtime} s\n")
    print("| path | randwrite IOPS | randread IOPS | rounds (write / read) |")
    print("|---|---|---|---|")
    medians = {}
    for name, r in results.items():
        medians[name] = {k: statistics.median(v) for k, v in r.items()}
        rounds = " ".join(f"{x / 1000:.1f}k" for x in r["randwrite"]) + " / " + " ".join(f"{x / 1000:.1f}k" for x in r["randread"])
        print(f"| {name} | {medians[name]['randwrite'] / 1000:.1f}k | {medians[name]['randread'] / 1000:.1f}k | {rounds} |")
    a, b, d = (medians[kinds[i][0]] for i in (0, 1, 3))
    print()
    for rw in ["randwrite", "randread"]:
        print(f"{rw}: (b)/(a) = {b[rw] / a[rw]:.2f}x (target >= 0.5x), (b)/(d) = {b[rw] / d[rw]:.2f}x (target >= 2x)")
    print()
    for name, grown in cache.items():
        print(f"writing 256 MiB through {name}: Cached: +{grown['cached_growth'] / 2**20:.1f} MiB machine-wide, "
              f"{grown['loop_and_file_resident'] / 2**20:.1f} MiB cached for the loop device and its file (target <= 32 MiB)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()},
                       "rounds": results, "medians": medians, "page_cache_growth": cache}, f, indent=2)


if __name__ == "__main__":
    main()
