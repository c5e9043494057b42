#!/usr/bin/python3
"""A zipf-distributed 4 KiB read/write mix over NBD through libnbd, that counts failed requests
instead of stopping at the first one (fio ends a job at its first ENOSPC, which is what a
device full at mem_limit answers). Run with Debian's python3 (python3-libnbd).

  zipf_mix.py URI REGION_BYTES SECONDS [--depth 8] [--reads 70] [--theta 1.2] [--seed 1]

Prints JSON: per direction, requests done, failed, IOPS and completion latency percentiles.
Written data: 4 KiB pages whose first 40 % is random and the rest zeros (about fio's 60 %
compressible buffers).
"""
import argparse
import bisect
import itertools
import json
import os
import random
import time

import nbd

PAGE = 4096


def percentile(sorted_values, fraction):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("region", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--reads", type=int, default=70, help="percent of requests that read")
    parser.add_argument("--theta", type=float, default=1.2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    pages = args.region // PAGE
    cumulative = list(itertools.accumulate(1.0 / (rank ** args.theta) for rank in range(1, pages + 1)))
    placement = list(range(pages))
    rng.shuffle(placement)  # the hottest ranks land anywhere in the region, as fio's zipf does
    payloads = [os.urandom(PAGE * 2 // 5) + bytes(PAGE - PAGE * 2 // 5) for _ in range(64)]
    handle = nbd.NBD()
    handle.connect_uri(args.uri)
    stats = {kind: {"done": 0, "failed": 0, "latencies": [], "errors": {}} for kind in ("read", "write")}
    in_flight = [0]

    def finished(kind, started, buffer):
        def callback(error):
            in_flight[0] -= 1
            s = stats[kind]
            if error.value:
                s["failed"] += 1
                name = os.strerror(error.value)
                s["errors"][name] = s["errors"].get(name, 0) + 1
            else:
                s["done"] += 1
                s["latencies"].append(time.monotonic() - started)
            return 1
        return callback

    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        while in_flight[0] < args.depth:
            rank = bisect.bisect_left(cumulative, rng.random() * cumulative[-1])
            offset = placement[min(rank, pages - 1)] * PAGE
            started = time.monotonic()
            in_flight[0] += 1
            if rng.randrange(100) < args.reads:
                buffer = nbd.Buffer(PAGE)
                handle.aio_pread(buffer, offset, completion=finished("read", started, buffer))
            else:
                buffer = payloads[rng.randrange(len(payloads))]
                handle.aio_pwrite(buffer, offset, completion=finished("write", started, buffer))
        handle.poll(-1)
    while in_flight[0]:
        handle.poll(-1)
    elapsed = args.seconds
    handle.shutdown()
    out = {}
    for kind, s in stats.items():
        latencies = sorted(s["latencies"])
        out[kind] = {"done": s["done"], "failed": s["failed"], "errors": s["errors"],
                     "iops": s["done"] / elapsed, "p50_us": percentile(latencies, 0.5) * 1e6,
                     "p99_us": percentile(latencies, 0.99) * 1e6}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
