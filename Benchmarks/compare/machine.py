"""The machine a benchmark ran on, and how busy it was."""
import os
import platform
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def loadavg():
    """The 1-minute load average."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def commit():
    out = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h"], capture_output=True, text=True).stdout
    return out.strip()


def describe():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_bytes": ram, "kernel": platform.release(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit(), "loadavg": [loadavg()],
            "realtime": realtime_processes()}


def summary(m):
    """One line naming the machine and the load while measuring."""
    loads = m.get("loadavg") or [0]
    text = (f"{m['cpu']}, {m['cores']} cores, {m['ram_bytes'] / 2**30:.0f} GiB RAM, Linux {m['kernel']}; "
            f"measured {m['date']} on `{m['commit']}`; 1-minute load average {min(loads):.1f}–{max(loads):.1f} "
            f"while measuring")
    if m.get("realtime"):
        text += (f"; **other programs ran at real-time priority meanwhile ({', '.join(m['realtime'])}), so these "
                 "figures are starved and not comparable**")
    return text


def realtime_processes():
    """Other programs running with a real-time policy (SCHED_FIFO or SCHED_RR): they take the
    cores from everything measured here, whatever the load average says. Kernel threads are
    left out."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if command and int(fields[38]) in (1, 2):  # policy: SCHED_FIFO, SCHED_RR
            found.append(os.path.basename(command))
    return sorted(set(found))


def sample(m):
    """Adds the load average and any real-time programs now to a describe() record."""
    m["loadavg"].append(loadavg())
    m.setdefault("realtime", [])
    for name in realtime_processes():
        if name not in m["realtime"]:
            m["realtime"].append(name)
