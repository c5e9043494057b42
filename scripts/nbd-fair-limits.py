#!/usr/bin/env python3
"""Issue 10 C2/C3 reproducer: hostile clients against `znbd serve`, then a well-behaved Unix client.

c2-idle: 1,024 idle TCP connections in transmission; c2-handshakes: 1,100 silent TCP handshakes;
c3: 20 Unix clients each queue four 64 MiB READs and never read the replies (server RSS printed
from /proc before, during and after). Each then reports whether another Unix client gets in.

usage: scripts/nbd-fair-limits.py ZNBD_BINARY {c2-idle,c2-handshakes,c3}"""
import os, socket, struct, subprocess, sys, tempfile, time

def rss(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, v = line.split(":", 1)
        if k in ("VmRSS", "VmHWM"): out[k] = int(v.split()[0]) // 1024
    return out

def handshake(s, name=b"zram0"):
    g = recv_exact(s, 18)
    assert g[:8] == b"NBDMAGIC", g
    s.sendall(struct.pack(">I", 3) + struct.pack(">QII", 0x49484156454F5054, 1, len(name)) + name)
    size, flags = struct.unpack(">QH", recv_exact(s, 10))
    return size

def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError("closed")
        b += c
    return b

def request(s, typ, cookie, offset, length, payload=b""):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, typ, cookie, offset, length) + payload)

def reply(s, length):
    magic, err, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
    data = recv_exact(s, length) if err == 0 else b""
    return err, data

def victim(path, read_length):
    """A Unix client: handshake, write 4 KiB, read it back, then one large read."""
    s = socket.socket(socket.AF_UNIX); s.settimeout(10)
    try:
        s.connect(path)
        handshake(s)
        request(s, 1, 1, 0, 4096, b"\x5a" * 4096)
        err, _ = reply(s, 0)
        if err: return f"write failed with NBD error {err}"
        request(s, 0, 2, 0, 4096)
        err, data = reply(s, 4096)
        if err or data != b"\x5a" * 4096: return f"read back failed (error {err})"
        request(s, 0, 3, 0, read_length)
        err, data = reply(s, read_length)
        return f"ok (large read of {read_length >> 20} MiB: error {err})"
    except Exception as e:
        return f"FAILED: {e!r}"
    finally:
        s.close()

def main():
    binary, scenario = sys.argv[1], sys.argv[2]
    d = tempfile.mkdtemp(prefix="c23-")
    path = d + "/nbd.sock"
    port = 10800 + os.getpid() % 1000
    p = subprocess.Popen([binary, "serve", "--unix", path, "--control", d + "/control.sock", "--tcp", str(port),
                          "--size", "1G", "--no-mlock"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(path): break
            time.sleep(0.05)
        held = []
        if scenario == "c2-idle":
            for _ in range(1024):
                s = socket.create_connection(("127.0.0.1", port)); held.append(s)
                handshake(s)
            time.sleep(1)
            print("1024 idle TCP connections in transmission; Unix client:", victim(path, 1 << 20))
        elif scenario == "c2-handshakes":
            for _ in range(1100):
                s = socket.create_connection(("127.0.0.1", port)); held.append(s)
            time.sleep(1)
            print("1100 silent TCP handshakes; Unix client:", victim(path, 1 << 20))
        else:
            print("server RSS at start (MiB):", rss(p.pid))
            for i in range(20):
                s = socket.socket(socket.AF_UNIX); s.connect(path); held.append(s)
                handshake(s)
                for k in range(4): request(s, 0, k, 0, 64 << 20)
            time.sleep(3)
            print("20 clients x 4 queued 64 MiB reads, replies unread; server RSS (MiB):", rss(p.pid))
            print("another Unix client:", victim(path, 64 << 20))
            for s in held: s.close()
            held = []
            time.sleep(3)
            print("after the greedy clients left; server RSS (MiB):", rss(p.pid))
    finally:
        p.terminate()
        try: p.wait(10)
        except subprocess.TimeoutExpired: p.kill()
        subprocess.run(["rm", "-rf", d])

main()
