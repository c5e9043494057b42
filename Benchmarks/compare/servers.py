"""The NBD servers we measure, each started on a Unix socket in a private directory."""
import os
import shutil
import signal
import subprocess
import time


def _wait_for(path, proc, timeout=20):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        if time.time() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.02)


def cpu_seconds(pid):
    """CPU time of a process and its reaped children (nbd-server forks one per client), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Server:
    """One running server; `uri` is what fio, nbdcopy and nbdinfo connect to."""

    name = "server"
    export = ""

    def __init__(self, workdir, size):
        self.dir = os.path.join(workdir, self.name.replace(" ", "-").replace("/", "-"))
        os.makedirs(self.dir, exist_ok=True)
        self.socket = os.path.join(self.dir, "nbd.sock")
        self.size = size
        self.proc = None
        self.pid = None

    @property
    def uri(self):
        return f"nbd+unix:///{self.export}?socket={self.socket}"

    def start(self):
        raise NotImplementedError

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                if self.proc is not None and self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            else:
                os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


class Znbd(Server):
    export = "zram0"

    def __init__(self, workdir, size, binary, algorithm="lz4", extra=()):
        self.algorithm = algorithm
        self.name = f"znbd {algorithm}"
        self.binary = binary
        self.extra = list(extra)
        super().__init__(workdir, size)
        self.control = os.path.join(self.dir, "control.sock")

    def start(self):
        log = open(os.path.join(self.dir, "log"), "w")
        # A session of its own, as nbdkit and nbd-server get by daemonising: with the
        # kernel's autogroup scheduling a session shares CPU as one group, so on a busy
        # host znbd would otherwise split fio's share while the peers have their own.
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--unix", self.socket, "--control", self.control, "--size", str(self.size),
             "--algorithm", self.algorithm, "--no-mlock"] + self.extra,
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid
        _wait_for(self.control, self.proc)

    def status(self):
        import json
        out = subprocess.run([self.binary, "status", "--json", "--control", self.control],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)["devices"][0]


class Nbdkit(Server):
    def __init__(self, workdir, size, plugin_args, name):
        self.name = name
        self.plugin_args = plugin_args
        super().__init__(workdir, size)

    def start(self):
        pidfile = os.path.join(self.dir, "pid")
        subprocess.run(["nbdkit", "--unix", self.socket, "--pidfile", pidfile] + self.plugin_args, check=True)
        _wait_for(pidfile, None)
        time.sleep(0.05)
        with open(pidfile) as f:
            self.pid = int(f.read())
        _wait_for(self.socket, None)


def nbdkit_null(workdir, size):
    return Nbdkit(workdir, size, ["null", str(size)], "nbdkit null")


def nbdkit_sparse(workdir, size):
    return Nbdkit(workdir, size, ["memory", str(size), "allocator=sparse"], "nbdkit sparse")


def nbdkit_zstd(workdir, size):
    return Nbdkit(workdir, size, ["memory", str(size), "allocator=zstd"], "nbdkit zstd")


class NbdServerTmpfs(Server):
    """The reference nbd-server serving a file on tmpfs (/dev/shm)."""

    name = "nbd-server tmpfs"
    export = "disk"

    def start(self):
        self.file = f"/dev/shm/znbd-bench-{os.getpid()}.img"
        with open(self.file, "wb") as f:
            f.truncate(self.size)
        config = os.path.join(self.dir, "config")
        with open(config, "w") as f:
            f.write(f"[generic]\nunixsock = {self.socket}\nallowlist = true\n"
                    f"[disk]\nexportname = {self.file}\nflush = true\ntrim = true\n")
        pidfile = os.path.join(self.dir, "pid")
        subprocess.run(["nbd-server", "-C", config, "-p", pidfile], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(pidfile, None)
        time.sleep(0.1)
        with open(pidfile) as f:
            self.pid = int(f.read())
        _wait_for(self.socket, None)

    def stop(self):
        super().stop()
        try:
            os.unlink(self.file)
        except OSError:
            pass
